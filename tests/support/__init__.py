"""Real parts every test uses: an SMTP sink, a config in a temp dir, a daemon process."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

from mailbot.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.02, what: str = "condition"):
    """Poll `predicate` until true; a bounded wait on a condition, not a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def kind(self) -> str:
        return str(self.message["X-Mailbot-Kind"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content().replace("\r\n", "\n") if part is not None else ""

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else None

    def attachment(self, filename_suffix: str) -> tuple[str, bytes] | None:
        for part in self.message.iter_attachments():
            name = part.get_filename() or ""
            if name.endswith(filename_suffix):
                return part.get_content_type(), part.get_payload(decode=True)
        return None


class SinkHandler:
    def __init__(self, sink: "SmtpSink") -> None:
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        if self.sink.refuse:
            return self.sink.refuse
        with self.sink.cond:
            self.sink.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                               envelope.original_content or envelope.content))
            self.sink.cond.notify_all()
        return "250 OK"


@dataclass
class SmtpSink:
    """A real SMTP server on loopback that keeps what it receives (the outgoing relay)."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    refuse: str = ""
    cond: threading.Condition = field(default_factory=threading.Condition)
    controller: Controller | None = None
    _read: int = 0

    def start(self) -> "SmtpSink":
        self.controller = Controller(SinkHandler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    def wait_count(self, n: int, timeout: float = 20.0) -> list[Received]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.received) >= n, timeout)
        assert ok, f"sink got {len(self.received)} message(s), expected {n}"
        return list(self.received)

    def take(self, expected: int, timeout: float = 10.0) -> list[Received]:
        """The messages received since the last `take`: exactly `expected` of them."""
        got = self.wait_count(self._read + expected, timeout)
        new = got[self._read:]
        self._read = len(got)
        assert len(new) == expected, [m.subject for m in new]
        return new

    def unread(self) -> list[Received]:
        with self.cond:
            return list(self.received[self._read:])


def write_config(tmp: Path, *, smtp_port: int, relay_port: int | None = None,
                 extra: str = "", policy: str = "", cap: int = 1000) -> Path:
    """A config for one test: its own storage dir, ports and relay."""
    relay = f'smtp_host = "127.0.0.1"\nsmtp_port = {relay_port}\n' if relay_port else ""
    text = f"""
[list]
address = "incidents@example.com"
bot_address = "mailbot@example.com"

[ingress.smtp]
host = "127.0.0.1"
port = {smtp_port}

[outbound]
{relay}retry_initial_seconds = 1
retry_max_seconds = 2

[storage]
dir = "{tmp / 'var'}"

[policy]
allowed_senders = ["example.com"]
max_mail_per_address_per_hour = {cap}
max_list_mail_per_hour = 100000
{policy}

[services]
file = "{REPO / 'config' / 'services.toml'}"
{extra}
"""
    path = tmp / "mailbot.toml"
    path.write_text(text)
    return path


def load(tmp: Path, **kw) -> Config:
    return load_config(write_config(tmp, **kw))


def message(subject: str, body: str = "", *, sender: str = "alice@example.com",
            message_id: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    headers = dict(headers or {})
    date = headers.pop("Date", "Wed, 25 Nov 2026 10:00:00 +0000")  # fixed unless given
    lines = [f"From: {sender}", "To: incidents@example.com", f"Subject: {subject}",
             f"Date: {date}"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    for k, v in headers.items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


DECLARATION_BODY = """Severity: SEV2
Phase: investigating
Commander: alice@example.com
Channel: #inc
Roles: comms=bob@example.com

Checkout is failing.
"""


class DaemonProcess:
    """`mailbot serve` as a real process, to be stopped with SIGTERM or killed with -9."""

    def __init__(self, config_path: Path, smtp_port: int) -> None:
        self.config_path = config_path
        self.smtp_port = smtp_port
        self.proc: subprocess.Popen | None = None
        self.log_path = config_path.parent / "serve.log"

    def start(self) -> "DaemonProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "serve", "--config", str(self.config_path)],
            stdout=log, stderr=log, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_for(self._listening, timeout=20, what="mailbot serve to listen")
        return self

    def _listening(self) -> bool:
        assert self.proc and self.proc.poll() is None, self.log()
        try:
            with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill9(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc
        self.proc.terminate()
        return self.proc.wait(30)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def send(port: int, raw: bytes, mail_from: str = "alice@example.com",
         rcpt: str = "incidents@example.com") -> None:
    import smtplib
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.sendmail(mail_from, [rcpt], raw)


def drained(d) -> bool:
    """The daemon processed everything it accepted and delivered what it queued."""
    return not d.rt.spool.pending() and not d.rt.outbox.queued()
