"""Relay faults: a relay that never answers, one that drops the line mid-DATA, 4xx then OK,
5xx parked and re-sent with `mailbot outbox resend`. Outgoing mail is never lost, and once
the relay accepted it, never sent again."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from mailbot.clock import FakeClock
from mailbot.config import OutboundConfig, load_config
from mailbot.models import OutgoingMail
from mailbot.outbox import Outbox
from mailbot.relays import SmtpRelay
from tests.support import (DECLARATION_BODY, REPO, SmtpSink, free_port, message, send,
                                wait_for, write_config)
from tests.support.chaos import ChaosDaemon

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)


def mail(name: str = "m1") -> OutgoingMail:
    body = b"From: mailbot@example.com\r\nTo: a@example.com\r\nSubject: t\r\n" \
           b"Message-ID: <" + name.encode() + b"@example.com>\r\n\r\n" + b"line\r\n" * 2000
    return OutgoingMail(name, "mailbot@example.com", ("a@example.com",), body,
                        message_id=f"{name}@example.com", kind="ack")


class RawRelay:
    """A hand-written SMTP server on loopback whose misbehaviour the test chooses.

    mode "silent": accept the connection and never say a word.
    mode "drop":   answer until DATA, read part of the message, close the connection.
    mode "ok":     a plain, correct server that keeps each complete message.
    """

    def __init__(self, port: int | None = None) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.mode = "ok"
        self.received: list[bytes] = []
        self.partial: list[int] = []  # bytes of DATA read before a drop
        self.conns: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._session, args=(conn, self.mode), daemon=True).start()

    def _session(self, conn: socket.socket, mode: str) -> None:
        if mode == "silent":
            return  # keep the socket open and say nothing
        f = conn.makefile("rwb")
        try:
            f.write(b"220 raw relay\r\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    f.write(b"250 raw\r\n")
                elif verb == b"DATA":
                    f.write(b"354 go on\r\n")
                    f.flush()
                    if mode == "drop":
                        got = f.read(4096)  # part of the message, then hang up
                        self.partial.append(len(got))
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    data = b""
                    while not data.endswith(b"\r\n.\r\n"):
                        chunk = f.readline()
                        if not chunk:
                            return
                        data += chunk
                    self.received.append(data)
                    f.write(b"250 kept\r\n")
                elif verb == b"QUIT":
                    f.write(b"221 bye\r\n")
                    f.flush()
                    return
                else:
                    f.write(b"250 ok\r\n")
                f.flush()
        except OSError:
            return
        finally:
            try:
                f.close()
                conn.close()
            except OSError:
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def raw_relay():
    r = RawRelay()
    yield r
    r.stop()


def outbox_for(tmp_path, port: int, clock: FakeClock, timeout: int = 1) -> Outbox:
    return Outbox(tmp_path / "outbox", SmtpRelay(OutboundConfig(
        smtp_host="127.0.0.1", smtp_port=port, timeout=timeout)), clock,
        retry_initial=10, retry_max=60)


def record(outbox: Outbox, name: str) -> dict:
    return json.loads((outbox.queue / f"{name}.json").read_text())


def test_relay_that_never_answers_times_out_and_keeps_the_mail(tmp_path, raw_relay):
    raw_relay.mode = "silent"
    clock = FakeClock(T0)
    outbox = outbox_for(tmp_path, raw_relay.port, clock, timeout=1)
    outbox.enqueue(mail())
    started = time.monotonic()
    delivered, retry_in = outbox.deliver_due()
    took = time.monotonic() - started
    assert delivered == 0 and retry_in is not None
    assert took < 10, f"a silent relay held the outbox for {took:.1f}s (timeout is 1s)"
    assert outbox.queued() == ["m1"]
    assert "timed out" in record(outbox, "m1")["last_error"]
    assert record(outbox, "m1")["attempts"] == 1

    raw_relay.mode = "ok"  # the relay recovers
    clock.advance(dt.timedelta(seconds=15))
    assert outbox.deliver_due()[0] == 1
    assert len(raw_relay.received) == 1
    clock.advance(dt.timedelta(hours=1))
    assert outbox.deliver_due() == (0, None) and len(raw_relay.received) == 1


def test_relay_dropping_the_connection_mid_data_is_retried_and_sent_once(tmp_path, raw_relay):
    raw_relay.mode = "drop"
    clock = FakeClock(T0)
    outbox = outbox_for(tmp_path, raw_relay.port, clock, timeout=5)
    outbox.enqueue(mail())
    for attempt in range(1, 4):  # three cut-off attempts in a row
        assert outbox.deliver_due()[0] == 0
        assert record(outbox, "m1")["attempts"] == attempt
        clock.advance(dt.timedelta(seconds=200))
    assert len(raw_relay.partial) == 3 and all(n > 0 for n in raw_relay.partial)
    assert raw_relay.received == []

    raw_relay.mode = "ok"
    assert outbox.deliver_due()[0] == 1
    assert len(raw_relay.received) == 1
    assert b"Message-ID: <m1@example.com>" in raw_relay.received[0]
    assert outbox.enqueue(mail()) is False  # a recovery re-enqueue is a no-op once sent
    clock.advance(dt.timedelta(hours=1))
    assert outbox.deliver_due()[0] == 0 and len(raw_relay.received) == 1


def test_crash_after_the_sent_marker_does_not_send_again(tmp_path, raw_relay):
    """Regression: a kill between the sent-marker and the queue file's removal (crash
    point marker-written) used to send the mail a second time after restart."""
    clock = FakeClock(T0)
    outbox = outbox_for(tmp_path, raw_relay.port, clock)
    outbox.enqueue(mail())
    queued = (outbox.queue / "m1.json").read_bytes()
    assert outbox.deliver_due()[0] == 1
    (outbox.queue / "m1.json").write_bytes(queued)  # the state such a kill leaves
    restarted = outbox_for(tmp_path, raw_relay.port, clock)
    assert restarted.deliver_due()[0] == 0
    assert restarted.queued() == []
    assert len(raw_relay.received) == 1


def _daemon_behind(tmp_path, refuse: str):
    """A running daemon whose relay is a sink that answers every DATA with `refuse`:
    (sink, SMTP port, config path, loaded config, daemon)."""
    sink = SmtpSink(refuse=refuse).start()
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port)
    return sink, port, cfg, load_config(cfg), ChaosDaemon(cfg, port).start()


def test_4xx_then_ok_through_the_daemon_is_delivered_once(tmp_path):
    sink, port, cfg, config, daemon = _daemon_behind(tmp_path, "451 4.3.0 try later")
    try:
        send(port, message("[DECLARE] flaky relay", DECLARATION_BODY, message_id="f4@x"))
        queue = config.storage.outbox_dir / "queue"

        def attempts() -> int:
            acks = [p for p in queue.glob("*.ack.*.json")]
            return max((json.loads(p.read_text())["attempts"] for p in acks), default=0)

        wait_for(lambda: attempts() >= 2, timeout=30, what="two refused attempts")
        sink.refuse = ""
        wait_for(lambda: sink.received and not any(queue.glob("*.ack.*.json")), timeout=30,
                 what="the ack delivered")
        assert "451" in daemon.log()
    finally:
        assert daemon.terminate() == 0
        sink.stop()
    acks = [r for r in sink.received if r.message["X-Mailbot-Kind"] == "ack"]
    assert len(acks) == 1 and acks[0].message["In-Reply-To"] == "<f4@x>"


def cli(cfg, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args, "--config", str(cfg)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_5xx_is_parked_with_a_clear_line_and_resent_from_the_cli(tmp_path):
    sink, port, cfg, config, daemon = _daemon_behind(tmp_path, "550 5.7.1 relaying denied")
    try:
        send(port, message("[DECLARE] parked mail", DECLARATION_BODY, message_id="p5@x"))
        parked_dir = config.storage.outbox_dir / "parked"
        wait_for(lambda: any(parked_dir.glob("*.ack.*.json")), timeout=30, what="parked")
        name = next(parked_dir.glob("*.ack.*.json")).stem
        # One line says what happened, why, and the command that fixes it.
        # The log line is written just after the parked file: wait for it, not read once.
        line = wait_for(lambda: next((x for x in daemon.log().splitlines()
                                      if "parked" in x and name in x), None),
                        timeout=30, what="the parked log line")
        assert "550" in line and f"mailbot outbox resend {name}" in line and "ERROR" in line

        # Parked survives a restart, and is not retried on its own.
        assert daemon.terminate() == 0
        daemon = ChaosDaemon(cfg, port).start()
        listing = cli(cfg, "outbox")
        assert listing.returncode == 0
        assert f"parked  {name}" in listing.stdout and "550" in listing.stdout

        sink.refuse = ""
        out = cli(cfg, "outbox", "resend", name)
        assert out.returncode == 0, out.stderr
        assert f"{name}: queued again" in out.stdout
        # The running daemon picks it up (it rescans its queue; the CLI cannot wake it).
        wait_for(lambda: len(sink.received) >= 1, timeout=15, what="the re-sent mail")
        wait_for(lambda: not any((config.storage.outbox_dir / "queue").glob("*.json")),
                 what="queue empty")
        again = cli(cfg, "outbox", "resend", name)
        assert again.returncode != 0 and "not parked" in again.stderr
    finally:
        assert daemon.terminate() == 0
        sink.stop()
    acks = [r for r in sink.received if r.message["X-Mailbot-Kind"] == "ack"]
    assert len(acks) == 1 and acks[0].message["In-Reply-To"] == "<p5@x>"
    # (the scheduler's digest, refused too, stays parked: only the ack was re-sent)
    assert not any((config.storage.outbox_dir / "parked").glob("*.ack.*.json"))


def test_an_address_the_relay_cannot_take_is_parked_not_fatal(tmp_path, raw_relay):
    """Regression: a reply to a non-ASCII sender (alicé@example.com, RFC 6532) made
    smtplib raise UnicodeEncodeError, which killed the outbox thread: the daemon stopped,
    and the queued mail stopped it again after every restart."""
    clock = FakeClock(T0)
    outbox = outbox_for(tmp_path, raw_relay.port, clock)
    bad = OutgoingMail("bad", "mailbot@example.com", ("alic\u00e9@example.com",),
                       b"Subject: t\r\n\r\nhi\r\n", message_id="bad@example.com", kind="status")
    outbox.enqueue(bad)
    outbox.enqueue(mail("good"))
    assert outbox.deliver_due()[0] == 1  # no exception; the good one goes
    assert outbox.parked_names() == ["bad"] and outbox.queued() == []
    assert "SMTPUTF8" in outbox.parked_reason("bad")
    assert len(raw_relay.received) == 1


def test_daemon_survives_a_sender_it_cannot_answer(tmp_path):
    sink = SmtpSink().start()
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port)
    daemon = ChaosDaemon(cfg, port).start()
    try:
        raw = ("From: Alicé <alicé@example.com>\r\nTo: incidents@example.com\r\n"
               "Subject: [STATUS]\r\nMessage-ID: <eai@x>\r\n\r\nstatus please\r\n").encode()
        import smtplib
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.ehlo()
            s.sendmail("alic\u00e9@example.com", ["incidents@example.com"], raw,
                       mail_options=["SMTPUTF8"])
        parked = load_config(cfg).storage.outbox_dir / "parked"
        wait_for(lambda: any(parked.glob("*.status.*.json")), what="the reply parked")
        send(port, message("[DECLARE] after eai", DECLARATION_BODY, message_id="after-eai@x"))
        wait_for(lambda: any(str(r.message["In-Reply-To"]) == "<after-eai@x>"
                             for r in sink.received), what="the next ack")
        assert daemon.alive(), daemon.log()
    finally:
        assert daemon.terminate() == 0, daemon.log()
        sink.stop()
