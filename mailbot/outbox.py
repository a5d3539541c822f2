"""The outbox: takes rendered OutgoingMail, keeps it durably, delivers it, retries.

Knows envelopes and bytes, nothing of incidents. Layout under `<storage>/outbox/`:

    queue/NAME.json     waiting (with attempts and the time of the next try)
    sent/xyz.log        sent markers, an AppendMap (mailbot/appendmap.py): NAME ->
                        {"sent": time}, appended to one of 4096 bucket files, so a delivery
                        creates no file; makes a re-enqueue after a crash a no-op
    parked/NAME.json    refused for good (5xx): kept with the reason for `mailbot outbox resend`

With no relay configured, delivery is a write into the Maildir `<storage>/outbox-sent/`
under the mail's own name, so that too happens once.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import random
import smtplib
import socket
import ssl
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator, Protocol

from mailbot.appendmap import AppendMap
from mailbot.clock import Clock
from mailbot.config import OutboundConfig
from mailbot.durable import (fsync_dir, remove_durably, sync_filesystem, unique_suffix,
                             write_atomic, write_new, write_unsynced)
from mailbot.faults import crash_point
from mailbot.models import OutgoingMail

log = logging.getLogger(__name__)


class TemporaryFailure(Exception):
    """Try again later (4xx, connection refused, timeout)."""


class PermanentFailure(Exception):
    """The relay refused for good (5xx): park the mail for a person."""


class RelayMismatch(PermanentFailure):
    """The relay lacks what the configuration requires of it (STARTTLS, AUTH): retrying
    cannot help until a person changes one of the two."""


def reply_text(code: int, message: bytes | str) -> str:
    """An SMTP reply as the relay wrote it: `550 5.1.1 <x>: unknown user`."""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {' '.join(message.split())}"


class Relay(Protocol):
    def send(self, mail: OutgoingMail) -> None: ...


class MaildirRelay:
    """Delivery into a local Maildir, for the default set-up with no SMTP relay."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = Path(maildir)
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)

    def send(self, mail: OutgoingMail) -> None:
        final = self.maildir / "new" / mail.name
        if final.exists() or any((self.maildir / "cur").glob(f"{mail.name}:*")):
            return
        tmp = self.maildir / "tmp" / f"{mail.name}.{unique_suffix()}"
        try:
            write_new(tmp, mail.message)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.rename(tmp, final)
            fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TemporaryFailure(f"maildir {self.maildir}: {exc.strerror}") from exc


class SmtpRelay:
    """Delivery to the configured SMTP relay (STARTTLS / implicit TLS / login)."""

    def __init__(self, config: OutboundConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._in_session = False

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        helo = c.helo_name or _local_hostname()
        if c.tls == "implicit":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                c.smtp_host, c.smtp_port, timeout=c.timeout, local_hostname=helo,
                context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=c.timeout,
                                local_hostname=helo)
        try:
            if c.tls == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    # Sending anyway would put the list's mail (and a password) on the
                    # network in clear; waiting will not make the relay offer it.
                    raise RelayMismatch(
                        f"relay {c.smtp_host}:{c.smtp_port} does not offer STARTTLS, which "
                        "[outbound] tls = \"starttls\" requires (fix the relay, or set tls "
                        "to what it offers)")
                smtp.starttls(context=ssl.create_default_context())
            if c.username:
                smtp.ehlo_or_helo_if_needed()
                if not smtp.has_extn("auth"):
                    raise RelayMismatch(
                        f"relay {c.smtp_host}:{c.smtp_port} does not offer AUTH, and "
                        "[outbound] username is set (fix the relay, or unset "
                        "username)")
                smtp.login(c.username, c.password())
        except BaseException:
            smtp.close()
            raise
        return smtp

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep one relay connection for several sends (one delivery pass)."""
        self._in_session = True
        try:
            yield
        finally:
            self._in_session = False
            self._drop(quit=True)

    def _drop(self, quit: bool = False) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if quit:
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        smtp.close()

    def send(self, mail: OutgoingMail) -> None:
        c = self.config
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            smtp = self._smtp
            try:
                refused = smtp.sendmail(mail.mail_from, list(mail.recipients), mail.message)
            except BaseException:
                self._drop()
                raise
            if not self._in_session:
                self._drop(quit=True)
                if refused:
                    log.warning("outbox %s: relay refused some recipients: %s",
                                mail.name, ", ".join(f"{r} ({reply_text(code, msg)})"
                                                     for r, (code, msg) in refused.items()))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(f"{r}: {reply_text(code, msg)}"
                             for r, (code, msg) in exc.recipients.items())
            if all(500 <= code < 600 for code in codes):
                raise PermanentFailure(f"all recipients refused: {text}") from exc
            raise TemporaryFailure(f"recipients refused: {text}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryFailure(f"relay login failed: {exc.smtp_code}") from exc
        except smtplib.SMTPResponseException as exc:
            reply = reply_text(exc.smtp_code, exc.smtp_error)
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(f"relay said {reply}") from exc
            raise TemporaryFailure(f"relay said {reply}") from exc
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            raise TemporaryFailure(f"relay {c.smtp_host}:{c.smtp_port}: {exc}") from exc
        except UnicodeError as exc:
            # smtplib speaks ASCII unless SMTPUTF8 is asked for: an address like
            # alicé@example.com cannot go as it is, now or later.
            raise PermanentFailure(f"address not sendable without SMTPUTF8: {exc}") from exc


def relay_for(config: OutboundConfig, sent_maildir: Path) -> Relay:
    """The relay the configuration asks for."""
    if config.smtp_host:
        return SmtpRelay(config)
    return MaildirRelay(sent_maildir)


@functools.lru_cache(maxsize=1)
def _local_hostname() -> str:
    """The EHLO name: smtplib looks it up (socket.getfqdn, DNS) on every connection."""
    return socket.getfqdn()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
            if pid.isdigit() and not _alive(int(pid)):
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
                    # tests/reliability/test_chaos.py, crash point marker-written).
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
                    # it again after each restart (tests/reliability/test_fuzz.py).
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
