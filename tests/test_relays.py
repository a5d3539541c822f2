"""The outbound relay's rough edges, through `mailbot ingest` and `mailbot outbox` against
a real aiosmtpd relay on loopback: a relay without STARTTLS, a refusal's reason as the
relay wrote it, the EHLO name."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from aiosmtpd.controller import Controller

from tests.support import DECLARATION_BODY, REPO, free_port, message, write_config


class Relay:
    """Takes mail, or refuses every recipient with `refuse`; notes each EHLO name."""

    def __init__(self, refuse: str = "") -> None:
        self.refuse = refuse
        self.helo_names: list[str] = []
        self.data: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        with self.lock:
            self.helo_names.append(session.host_name)
            self.data.append(envelope.content)
        return "250 OK"


@pytest.fixture
def relay_at():
    controllers = []

    def start(relay: Relay) -> int:
        controller = Controller(relay, hostname="127.0.0.1", port=free_port())
        controller.start()
        controllers.append(controller)
        return controller.port

    yield start
    for controller in controllers:
        controller.stop()


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], input=stdin, cwd=REPO,
                          capture_output=True, timeout=120)


def configured(tmp_path, port: int, outbound: str):
    cfg = write_config(tmp_path, smtp_port=free_port(), relay_port=port)
    text = cfg.read_text()
    cfg.write_text(text.replace("retry_initial_seconds = 1",
                                outbound + "\nretry_initial_seconds = 1", 1))
    return cfg


def declare(cfg, mid: str) -> None:
    out = cli("ingest", "-", "--config", str(cfg),
              stdin=message("[DECLARE] relay edge", DECLARATION_BODY, message_id=mid))
    assert out.returncode == 0, out.stderr


def test_a_relay_without_starttls_parks_the_mail_with_the_reason(tmp_path, relay_at):
    relay = Relay()
    cfg = configured(tmp_path, relay_at(relay), 'tls = "starttls"')
    declare(cfg, "tls1@x")
    listed = cli("outbox", "--config", str(cfg))
    text = listed.stdout.decode()
    assert "0 queued, 1 parked" in text, text  # not retried forever
    assert "does not offer STARTTLS" in text and 'tls = "starttls"' in text, text
    assert relay.data == []  # nothing went out in clear


def test_a_refusal_reads_as_the_relay_wrote_it(tmp_path, relay_at):
    relay = Relay(refuse="550 5.1.1 <incidents@example.com>: Recipient address rejected")
    cfg = configured(tmp_path, relay_at(relay), "")
    declare(cfg, "ref1@x")
    text = cli("outbox", "--config", str(cfg)).stdout.decode()
    assert "1 parked" in text, text
    assert "550 5.1.1 <incidents@example.com>: Recipient address rejected" in text, text
    assert "b'" not in text and "b\"" not in text, text


@pytest.mark.parametrize("helo, expected", [("mail.example.net", "mail.example.net"),
                                            ("", None)])
def test_the_ehlo_name_is_helo_name_or_this_host(tmp_path, relay_at, helo, expected):
    import socket

    relay = Relay()
    cfg = configured(tmp_path, relay_at(relay), f'helo_name = "{helo}"')
    declare(cfg, f"helo-{helo or 'default'}@x")
    assert relay.helo_names == [expected or socket.getfqdn()]


def test_a_helo_name_that_could_break_the_command_line_is_refused(tmp_path):
    cfg = configured(tmp_path, free_port(), 'helo_name = "mail example"')
    out = cli("check-config", "--config", str(cfg))
    assert out.returncode == 78 and b"helo_name" in out.stderr
