"""Helpers for the reliability tests: a daemon process with fault injection, its memory,
SMTP submission that returns the spool name, and the checks every campaign ends with."""

from __future__ import annotations

import collections
import json
import os
import signal
import smtplib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mailbot.config import Config
from mailbot.store import Store
from tests.support import REPO, DaemonProcess, SmtpSink, wait_for

# The digest and reminders the scheduler may send are not part of what these tests count.
ACK = "ack"


class ChaosDaemon(DaemonProcess):
    """`mailbot serve` as a process, optionally armed with MAILBOT_CRASH_AT."""

    def __init__(self, config_path: Path, smtp_port: int, crash_at: str | None = None) -> None:
        super().__init__(config_path, smtp_port)
        self.crash_at = crash_at

    def start(self) -> "ChaosDaemon":
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("MAILBOT_CRASH_AT", None)
        if self.crash_at:
            env["MAILBOT_CRASH_AT"] = self.crash_at
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "serve", "--config", str(self.config_path)],
            stdout=log, stderr=log, cwd=REPO, env=env)
        log.close()
        wait_for(self._listening, timeout=20, what="mailbot serve to listen")
        return self

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_dead(self, timeout: float = 30.0) -> int:
        """Wait for the process to end on its own; returns its return code."""
        assert self.proc
        wait_for(lambda: self.proc.poll() is not None, timeout=timeout,
                 what=f"the daemon to die at {self.crash_at}")
        return self.proc.returncode

    def kill9_if_alive(self) -> bool:
        if self.alive():
            self.kill9()
            return True
        return False


def proc_status_kb(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM` figure of /proc/PID/status, in kB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM (Linux >= 4.0: write 5 to clear_refs) so the next peak is one case's."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def submit(port: int, raw: bytes, *, mail_from: str = "alice@example.com",
           rcpt: str = "incidents@example.com", timeout: float = 30.0) -> str:
    """Send one message; return the spool name from `250 ... queued as NAME`."""
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as s:
        s.ehlo()
        s.mail(mail_from)
        code, resp = s.rcpt(rcpt)
        if code != 250:
            raise smtplib.SMTPRecipientsRefused({rcpt: (code, resp)})
        code, resp = s.data(raw)
    assert code == 250, (code, resp)
    return resp.decode().rsplit(" ", 1)[-1]


def acks_by_reply_to(sink: SmtpSink) -> dict[str, list[str]]:
    """In-Reply-To (without <>) -> Message-IDs of every ack the sink received for it."""
    with sink.cond:
        received = list(sink.received)
    out: dict[str, list[str]] = collections.defaultdict(list)
    for r in received:
        msg = r.message
        if msg["X-Mailbot-Kind"] != ACK:
            continue
        out[str(msg["In-Reply-To"]).strip("<>")].append(str(msg["Message-ID"]))
    return out


@dataclass
class Verdict:
    incidents: int
    duplicates_on_wire: int


def check_exactly_once(sink: SmtpSink, config: Config, accepted: set[str],
                       attempted: set[str], may_repeat: int, title_of) -> Verdict:
    """The promises after any number of kills (daemon stopped):

    every accepted message has one incident and one ack (one Message-ID); a message never
    accepted may have been processed (it was spooled before the kill), but only once; at
    most one repeat on the wire per kill that can fall between the relay's 250 and the
    sent-marker (`may_repeat`: the relay hand-off is at-least-once); the store is
    consistent and nothing went to failed/."""
    acks = acks_by_reply_to(sink)
    missing = sorted(accepted - set(acks))
    assert not missing, f"accepted but never acknowledged: {missing[:5]}"
    two = {k: v for k, v in acks.items() if len(set(v)) != 1}
    assert not two, f"a message got two different acks: {list(two.items())[:3]}"
    repeats = sum(len(v) - 1 for v in acks.values())
    assert repeats <= may_repeat, f"{repeats} repeated deliveries, at most {may_repeat} allowed"
    assert set(acks) <= attempted, "an ack for a message nobody sent"

    store = Store(config.storage.db_dir)
    try:
        incidents = list(store.all_incidents())
        titles = collections.Counter(i.title for i in incidents)
        assert not titles or max(titles.values()) == 1, \
            f"processed twice: {[t for t, n in titles.items() if n > 1][:5]}"
        assert {title_of(m) for m in accepted} <= set(titles), "accepted but no incident"
        assert set(titles) <= {title_of(m) for m in attempted}
        assert sorted(i.id for i in incidents) == list(range(1, len(incidents) + 1))
        assert store.check_integrity() == []
    finally:
        store.close()
    failed = list((config.storage.spool_dir / "failed").iterdir())
    assert failed == [], f"messages in failed/: {failed[:3]}"
    assert list((config.storage.spool_dir / "new").iterdir()) == []
    # The scheduler may have queued a digest or reminder just before the stop: that waits
    # for the next start, durably. No ack may be left behind.
    left = [p.name for p in (config.storage.outbox_dir / "queue").glob("*.json")
            if json.loads(p.read_text())["mail"]["kind"] == ACK]
    assert left == [], f"acks still queued: {left[:3]}"
    return Verdict(incidents=len(incidents), duplicates_on_wire=repeats)


def stop_quietly(proc: ChaosDaemon) -> None:
    if proc.alive():
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait(10)
