"""The SMTP ingress reads DATA in blocks and caps connections; it must read exactly what
aiosmtpd's own line-by-line reader reads, answer the same 500/552, and refuse the
connection over `max_connections` with 421 while the others go on.

Both servers run on loopback and are fed raw bytes from a socket (the client does the
dot-stuffing, or breaks it, as it likes), split into random writes."""

from __future__ import annotations

import random
import smtplib
import socket

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from mailbot.config import load_config
from mailbot.ingress.smtp import BoundedSMTP, IngressController, _Gate
from mailbot.spool import Spool
from tests.support import free_port, wait_for, write_config


class Capture:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
        self.contents.append(envelope.original_content)
        return "250 OK"


class _Server(Controller):
    def __init__(self, cls, size_limit: int) -> None:
        self.cls = cls
        super().__init__(Capture(), hostname="127.0.0.1", port=free_port(), ready_timeout=10,
                         data_size_limit=size_limit)

    def factory(self):
        server = self.cls(self.handler, **self.SMTP_kwargs)
        server.gate = _Gate(100)
        return server


@pytest.fixture(scope="module")
def servers():
    ours = _Server(BoundedSMTP, 5000)
    theirs = _Server(SMTP, 5000)
    ours.start()
    theirs.start()
    yield ours, theirs
    ours.stop()
    theirs.stop()


def _replies(sock: socket.socket, count: int) -> list[bytes]:
    """`count` reply lines (their codes and text), reading as they come."""
    buf = b""
    while buf.count(b"\r\n") < count:
        got = sock.recv(65536)
        if not got:
            break
        buf += got
    return buf.split(b"\r\n")[:count]


def _transaction(port: int, data: bytes, rng: random.Random) -> list[bytes]:
    """Greeting, EHLO, MAIL, RCPT, DATA + `data` written in random pieces, QUIT pipelined
    behind the end of DATA; returns the reply to the data and to QUIT."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        _replies(sock, 1)
        sock.sendall(b"HELO x\r\n")
        _replies(sock, 1)
        sock.sendall(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        _replies(sock, 3)
        pos = 0
        while pos < len(data):
            step = rng.choice((1, 2, 3, 5, 700, 4096, 70000))
            sock.sendall(data[pos:pos + step])
            pos += step
        sock.sendall(b"QUIT\r\n")
        return [r.split(b" ", 1)[0] for r in _replies(sock, 2)]


PIECES = [b"a", b".", b"..", b"\r\n", b"\r", b"\n", b"x" * 300, b"\r\n.", b".\r\n", b"\r\n\r\n",
          b"Subject: x\r\n", b"\r\n..\r\n", b"y" * 999, b"\r\n" * 50]


def _random_data(rng: random.Random) -> bytes:
    body = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 40)))
    # A lone dot must end it and appear nowhere before: stuff every line start as a client
    # would (lines that then grow over the limit are the point of some cases).
    lines = body.split(b"\r\n")
    stuffed = b"\r\n".join(b"." + x if x.startswith(b".") else x for x in lines)
    if stuffed and not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def test_blocks_read_what_aiosmtpd_reads_line_by_line(servers):
    ours, theirs = servers
    rng = random.Random(20261129)
    cases = [b".\r\n", b"\r\n.\r\n", b"..a\r\n..\r\nb\r\n.\r\n", b"\r\n\r\n..\r\n.\r\n",
             b"x" * 999 + b"\r\n.\r\n", b"x" * 1000 + b"\r\n.\r\n",
             b"." + b"x" * 1200 + b"\r\n.\r\n", (b"y" * 600 + b"\r\n") * 9 + b".\r\n",
             b"\rx\r\n.\r\n", b"a\rb\nc\r\n.\r\n"]
    cases += [_random_data(rng) for _ in range(300)]
    for data in cases:
        seed = rng.random()
        got = _transaction(ours.port, data, random.Random(seed))
        want = _transaction(theirs.port, data, random.Random(seed))
        assert got == want, data
        if got[0] == b"250":
            assert ours.handler.contents[-1] == theirs.handler.contents[-1], data
    assert len(ours.handler.contents) > 100  # most cases were accepted, the rest refused
    assert any(_transaction(ours.port, c, rng)[0] == b"500" for c in cases[:8])


def test_oversized_data_is_refused_with_552_and_the_session_goes_on(servers):
    ours, _ = servers
    rng = random.Random(1)
    assert _transaction(ours.port, b"z" * 900 + b"\r\n" + b"\r\n" * 5000 + b".\r\n",
                        rng) == [b"552", b"221"]
    assert _transaction(ours.port, b"Subject: small\r\n\r\nok\r\n.\r\n", rng) == [b"250", b"221"]


def test_connections_over_the_cap_get_421_and_a_freed_slot_is_taken_again(tmp_path):
    path = write_config(tmp_path, smtp_port=free_port())
    path.write_text(path.read_text().replace("[ingress.smtp]\n",
                                             "[ingress.smtp]\nmax_connections = 3\n"))
    cfg = load_config(path)
    controller = IngressController(Spool(tmp_path / "spool"), cfg.smtp)
    controller.start()
    try:
        held = [smtplib.SMTP("127.0.0.1", cfg.smtp.port, timeout=10) for _ in range(3)]
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", cfg.smtp.port, timeout=10)
        assert refused.value.smtp_code == 421
        # The held sessions still work, and a slot freed by QUIT is taken again.
        held[0].sendmail("alice@example.com", ["incidents@example.com"],
                         b"Subject: x\r\n\r\nbody\r\n")
        held.pop(0).quit()
        wait_for(lambda: controller.gate.open == 2, timeout=10, what="the slot to be freed")
        with smtplib.SMTP("127.0.0.1", cfg.smtp.port, timeout=10) as again:
            assert again.noop()[0] == 250
        for s in held:
            s.quit()
    finally:
        controller.stop()
