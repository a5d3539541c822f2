"""The outbox: takes rendered OutgoingMail, keeps it durably, delivers it, retries.

Knows envelopes and bytes, nothing of incidents. Layout under `<storage>/outbox/`:

    queue/NAME.json     waiting (with attempts and the time of the next try)
    sent/xyz.log        sent markers, an AppendMap (mailbot/appendmap.py): NAME ->
                        {"sent": time}, appended to one of 4096 bucket files, so a delivery
                        creates no file; makes a re-enqueue after a crash a no-op
    parked/NAME.json    refused for good (5xx): kept with the reason for `mailbot outbox resend`

Delivery goes through a relay (mailbot/relays.py): SMTP, or with none configured a write
into the Maildir `<storage>/outbox-sent/` under the mail's own name, so that too happens
once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
from contextlib import nullcontext
from pathlib import Path

from mailbot.appendmap import AppendMap
from mailbot.clock import Clock
from mailbot.durable import (other_process_alive, remove_durably, sync_filesystem, write_atomic,
                             write_unsynced)
from mailbot.faults import crash_point
from mailbot.models import OutgoingMail
from mailbot.relays import Relay, TemporaryFailure

log = logging.getLogger(__name__)


class Outbox:
    """enqueue / deliver_due / run, with retry and backoff."""

    def __init__(
        self,
        root: Path,
        relay: Relay,
        clock: Clock,
        *,
        retry_initial: float = 30,
        retry_max: float = 3600,
    ) -> None:
        self.root = Path(root)
        self.queue = self.root / "queue"
        self.sent = self.root / "sent"
        self.parked = self.root / "parked"
        for d in (self.queue, self.sent, self.parked):
            d.mkdir(parents=True, exist_ok=True)
        self.sent_markers = AppendMap(self.sent)
        self.relay = relay
        self.clock = clock
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.wake = threading.Event()
        self._lock = threading.Lock()
        # name -> ((inode, mtime), next try) of mail waiting for a retry
        self._due: dict[str, tuple[tuple[int, int], dt.datetime]] = {}
        # queue file name -> ((inode, mtime), record, mail) of mail this process queued
        # and has not tried yet: delivering it needs no read, parse or sent-marker check.
        self._fresh: dict[str, tuple[tuple[int, int], dict, OutgoingMail]] = {}
        self._clean_tmp()

    def _clean_tmp(self) -> None:
        # write_atomic's temporary files (".NAME.tmp.PID.N") left by a killed process:
        # their rename never happened, so nothing relies on them.
        for path in self.queue.glob(".*.tmp.*"):
            pid = path.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not other_process_alive(int(pid)):
                path.unlink(missing_ok=True)

    def is_sent(self, name: str) -> bool:
        """The relay (or the Maildir) has accepted the mail `name`."""
        return self.sent_markers.get(name) is not None

    def enqueue(self, mail: OutgoingMail, *, synced: bool = True) -> bool:
        """Queue `mail` durably unless it is already queued, sent or parked.
        `synced=False`: the caller runs `sync_filesystem` before relying on it."""
        if "/" in mail.name or mail.name.startswith("."):
            raise ValueError(f"bad outbox name {mail.name!r}")
        path = self.queue / f"{mail.name}.json"
        if path.exists() or self.is_sent(mail.name) or \
                (self.parked / f"{mail.name}.json").exists():
            return False
        record = {"mail": mail.to_dict(), "attempts": 0,
                  "next_try": self.clock.now().isoformat(), "last_error": ""}
        (write_atomic if synced else write_unsynced)(path, json.dumps(record).encode("utf-8"))
        st = path.stat()
        self._fresh[path.name] = ((st.st_ino, st.st_mtime_ns), record, mail)
        crash_point("enqueued")
        self.wake.set()
        return True

    def queued(self) -> list[str]:
        return sorted(p.stem for p in self.queue.glob("*.json"))

    def parked_names(self) -> list[str]:
        return sorted(p.stem for p in self.parked.glob("*.json"))

    def parked_reason(self, name: str) -> str:
        record = json.loads((self.parked / f"{name}.json").read_text("utf-8"))
        return record.get("last_error", "")

    def resend(self, name: str) -> None:
        """Move a parked mail back into the queue for another try."""
        src = self.parked / f"{name}.json"
        record = json.loads(src.read_text("utf-8"))
        record.update(attempts=0, next_try=self.clock.now().isoformat())
        write_atomic(self.queue / f"{name}.json", json.dumps(record).encode("utf-8"))
        remove_durably(src)
        self.wake.set()

    def deliver_due(self) -> tuple[int, float | None]:
        """Try every due mail once. Returns (delivered, seconds until the next retry)."""
        delivered = 0
        next_in: float | None = None
        # One relay connection per pass, not one per mail.
        session = getattr(self.relay, "session", None)
        with self._lock, (session() if session else nullcontext()):
            known, self._due = self._due, {}
            listing = sorted(self.queue.glob("*.json"))
            if len(self._fresh) > 10_000:  # sent by another process meanwhile: forget
                names = {p.name for p in listing}
                for name in [n for n in self._fresh if n not in names]:
                    self._fresh.pop(name, None)
            for path in listing:
                try:
                    st = path.stat()
                    stamp = (st.st_ino, st.st_mtime_ns)
                    now = self.clock.now()
                    # A mail waiting for its retry costs a stat, not a read and a parse,
                    # on each pass: a long relay outage must not eat the CPU. A rewrite
                    # of the file (a retry, `outbox resend`: a new inode) is read again.
                    cached = known.get(path.name)
                    if cached and cached[0] == stamp and cached[1] > now:
                        self._due[path.name] = cached
                        wait = (cached[1] - now).total_seconds()
                        next_in = wait if next_in is None else min(next_in, wait)
                        continue
                    fresh = self._fresh.pop(path.name, None)
                    if fresh is not None and fresh[0] != stamp:
                        fresh = None  # rewritten since (by `outbox resend`, say): read it
                    record = fresh[1] if fresh else json.loads(path.read_text("utf-8"))
                except FileNotFoundError:
                    continue
                due = dt.datetime.fromisoformat(record["next_try"])
                if due > now:
                    self._due[path.name] = (stamp, due)
                    wait = (due - now).total_seconds()
                    next_in = wait if next_in is None else min(next_in, wait)
                    continue
                mail = fresh[2] if fresh else OutgoingMail.from_dict(record["mail"])
                # Queued by this process after it checked the markers: cannot be sent yet.
                if not fresh and self.is_sent(mail.name):
                    # A crash between the sent-marker and the queue file's removal: the
                    # relay has it already; sending again would repeat it (found by
                    # tests/system/test_chaos.py, crash point marker-written).
                    remove_durably(path)
                    continue
                try:
                    self.relay.send(mail)
                except TemporaryFailure as exc:
                    record["attempts"] += 1
                    delay = min(self.retry_max,
                                self.retry_initial * 2 ** (record["attempts"] - 1))
                    delay *= random.uniform(0.8, 1.2)
                    record["next_try"] = (now + dt.timedelta(seconds=delay)).isoformat()
                    record["last_error"] = str(exc)
                    write_atomic(path, json.dumps(record).encode("utf-8"))
                    log.warning("outbox %s to %s: %s; retry %d in %.0fs", mail.name,
                                ",".join(mail.recipients), exc, record["attempts"], delay)
                    next_in = delay if next_in is None else min(next_in, delay)
                    continue
                except Exception as exc:  # noqa: BLE001 - PermanentFailure, or a bug
                    # Anything else a relay raises is parked too: raised, it would kill the
                    # outbox thread, which stops the daemon, and the same mail would kill
                    # it again after each restart (tests/system/test_fuzz.py).
                    record["last_error"] = str(exc) or type(exc).__name__
                    write_atomic(self.parked / path.name, json.dumps(record).encode("utf-8"))
                    remove_durably(path)
                    log.error("outbox %s to %s parked: %s (re-send with `mailbot outbox "
                              "resend %s`)", mail.name, ",".join(mail.recipients), exc,
                              mail.name)
                    continue
                crash_point("relay-accepted")
                # Marker (one append, no fsync) and removal are made durable together at
                # the end of the pass: a power cut before that can only repeat a mail,
                # never lose one.
                self.sent_markers.put(mail.name, {"sent": now.isoformat()})
                crash_point("marker-written")
                path.unlink()
                delivered += 1
                log.info("outbox %s %s delivered to %s", mail.name, mail.kind,
                         ",".join(mail.recipients))
        if delivered:
            sync_filesystem(self.root)
        return delivered, next_in

    def run(self, stop: threading.Event, idle: float = 30.0) -> None:
        """Deliver until `stop` is set; wake on enqueue or when a retry is due."""
        while not stop.is_set():
            self.wake.clear()
            try:
                _, next_in = self.deliver_due()
            except OSError as exc:  # disk trouble: keep the mail, try again soon
                log.error("outbox: %s", exc)
                next_in = 5.0
            timeout = idle if next_in is None else max(0.05, min(idle, next_in))
            self.wake.wait(timeout)
