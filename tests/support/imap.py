"""Helpers shared by the IMAP tests: run an ingress in a thread, watch its log, read the spool."""

from __future__ import annotations

import collections
import contextlib
import email.parser
import email.policy
import logging
import threading
import time
from collections.abc import Callable, Iterator

from mailbot.ingress.imap import ImapIngress
from mailbot.spool import Spool

WAIT = 20.0  # generous upper bound for anything the tests wait for; normally < 1 s


@contextlib.contextmanager
def running(ingress: ImapIngress) -> Iterator[threading.Thread]:
    """Run `ingress.run()` in a thread; on exit set stop and require a prompt return."""
    thread = threading.Thread(target=ingress.run, name="imap-ingress", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        ingress.stop.set()
        stopped = time.monotonic()
        thread.join(timeout=10)
    assert not thread.is_alive(), "run() did not return within 10 s of stop being set"
    # IDLE wakes every wake_interval to look at `stop`; it must not wait out idle_timeout.
    assert time.monotonic() - stopped < 3, "run() was slow to notice stop"


class LogWatch(logging.Handler):
    """Collects mailbot's IMAP log records and lets a test wait for one to appear."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()
        self._hook: tuple[str, Callable[[], object]] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        hook = None
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()
            if self._hook and self._hook[0] in record.getMessage():
                hook, self._hook = self._hook[1], None
        if hook:
            hook()  # in the logging thread: the ingress waits for it, deterministically

    def on_first(self, text: str, action: Callable[[], object]) -> None:
        """Run `action` once, in the logging thread, when a record with `text` appears."""
        self._hook = (text, action)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        with self._changed:
            return [r.getMessage() for r in self.records if r.levelno >= level]

    def count(self, text: str, level: int = logging.DEBUG) -> int:
        return sum(text in m for m in self.messages(level))

    def wait_for(self, text: str, times: int = 1, timeout: float = WAIT) -> None:
        """Block until `text` has appeared in `times` records."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(text in r.getMessage() for r in self.records) < times:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [r.getMessage() for r in self.records]
                    raise AssertionError(f"no log line with {text!r} (x{times}) within "
                                         f"{timeout}s; got: {seen}")
                self._changed.wait(left)


def spooled_message_ids(spool: Spool) -> collections.Counter:
    """How many times each Message-ID sits in the spool's new/ directory."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    counts: collections.Counter = collections.Counter()
    for name in spool.pending():
        headers = parser.parsebytes((spool.new / name).read_bytes())
        counts[str(headers.get("Message-ID", "")).strip()] += 1
    return counts


def wait_for_spool(spool: Spool, count: int, timeout: float = WAIT) -> None:
    """Block until the spool holds at least `count` messages (woken by spool.arrived)."""
    deadline = time.monotonic() + timeout
    while True:
        spool.arrived.clear()
        have = len(spool.pending())
        if have >= count:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"spool has {have} messages after {timeout}s, want {count}")
        spool.arrived.wait(left)


def make_message(tag: str, n: int) -> tuple[str, bytes]:
    """A small message with a unique Message-ID; returns (message_id, raw bytes)."""
    message_id = f"<{tag}-{n}@test.example>"
    raw = (f"From: alice@example.com\r\nTo: incidents@example.com\r\n"
           f"Subject: [INC-{n}] {tag} {n}\r\nMessage-ID: {message_id}\r\n"
           f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nbody {tag} {n}\r\n").encode()
    return message_id, raw


def make_messages(tag: str, count: int, start: int = 0) -> tuple[list[str], list[bytes]]:
    pairs = [make_message(tag, n) for n in range(start, start + count)]
    return [p[0] for p in pairs], [p[1] for p in pairs]
