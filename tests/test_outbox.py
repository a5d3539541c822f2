"""Outgoing mail survives a relay that is down, and is delivered once it is back."""

from __future__ import annotations

import datetime as dt

from mailbot.clock import FakeClock
from mailbot.config import OutboundConfig
from mailbot.outbox import Outbox
from mailbot.relays import SmtpRelay
from mailbot.runtime import build_runtime
from tests.support import DECLARATION_BODY, SmtpSink, free_port, load, message


def test_relay_down_then_up_delivers_exactly_once(tmp_path):
    sink = SmtpSink()  # not started: the relay is down
    clock = FakeClock(dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc))
    config = load(tmp_path, smtp_port=free_port(), relay_port=sink.port)
    rt = build_runtime(config, clock=clock)
    rt.spool.put(message("[DECLARE] relay down", DECLARATION_BODY, message_id="r1@x"), "pipe")
    rt.pipeline.process_pending()
    delivered, retry_in = rt.outbox.deliver_due()
    assert delivered == 0 and retry_in is not None
    assert len(rt.outbox.queued()) == 1

    # A restart while the relay is down keeps the mail (a new runtime on the same dir).
    rt.close()
    rt = build_runtime(config, clock=clock)
    assert len(rt.outbox.queued()) == 1
    rt.pipeline.recover()  # finishing a journal again must not queue a second copy
    assert len(rt.outbox.queued()) == 1

    sink.start()
    try:
        assert rt.outbox.deliver_due()[0] == 0  # not due yet: backoff is respected
        clock.advance(dt.timedelta(seconds=5))
        assert rt.outbox.deliver_due()[0] == 1
        sink.wait_count(1)
        clock.advance(dt.timedelta(hours=2))
        assert rt.outbox.deliver_due()[0] == 0
        rt.pipeline.recover()
        assert rt.outbox.deliver_due()[0] == 0
        assert len(sink.received) == 1
    finally:
        sink.stop()
        rt.close()


def test_permanent_refusal_parks_the_mail_for_resend(tmp_path):
    sink = SmtpSink(refuse="550 5.7.1 no thanks").start()
    clock = FakeClock(dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc))
    try:
        config = load(tmp_path, smtp_port=free_port(), relay_port=sink.port)
        rt = build_runtime(config, clock=clock)
        rt.spool.put(message("[DECLARE] parked", DECLARATION_BODY, message_id="p1@x"), "pipe")
        rt.pipeline.process_pending()
        assert rt.outbox.deliver_due()[0] == 0
        parked = rt.outbox.parked_names()
        assert len(parked) == 1 and "550" in rt.outbox.parked_reason(parked[0])
        sink.refuse = ""
        rt.outbox.resend(parked[0])
        assert rt.outbox.deliver_due()[0] == 1
        assert len(sink.wait_count(1)) == 1
    finally:
        sink.stop()


def test_temporary_refusal_is_retried(tmp_path):
    sink = SmtpSink(refuse="451 4.3.0 later").start()
    clock = FakeClock(dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc))
    try:
        outbox = Outbox(tmp_path / "outbox", SmtpRelay(OutboundConfig(
            smtp_host="127.0.0.1", smtp_port=sink.port, timeout=5)), clock, retry_initial=10)
        from mailbot.models import OutgoingMail
        assert outbox.enqueue(OutgoingMail("n1", "mailbot@example.com", ("a@example.com",),
                                           b"Subject: t\r\n\r\nhi\r\n"))
        assert outbox.enqueue(OutgoingMail("n1", "mailbot@example.com", ("a@example.com",),
                                           b"Subject: t\r\n\r\nhi\r\n")) is False
        assert outbox.deliver_due()[0] == 0
        assert outbox.queued() == ["n1"]
        sink.refuse = ""
        clock.advance(dt.timedelta(seconds=13))
        assert outbox.deliver_due()[0] == 1
        assert outbox.queued() == [] and len(sink.received) == 1
    finally:
        sink.stop()


def test_waiting_mail_is_not_reread_each_pass_but_an_outside_rewrite_is_seen(tmp_path,
                                                                              monkeypatch):
    import json

    import mailbot.outbox as outbox_module
    from mailbot.models import OutgoingMail

    sink = SmtpSink()  # down
    clock = FakeClock(dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc))
    outbox = Outbox(tmp_path / "outbox", SmtpRelay(OutboundConfig(
        smtp_host="127.0.0.1", smtp_port=sink.port, timeout=5)), clock, retry_initial=600)
    outbox.enqueue(OutgoingMail("w1", "mailbot@example.com", ("a@example.com",),
                                b"Subject: t\r\n\r\nhi\r\n"))
    assert outbox.deliver_due()[0] == 0  # fails, retry in ~10 minutes
    outbox.deliver_due()  # reads the rewritten file once and remembers its due time
    reads = []
    real_loads = json.loads
    monkeypatch.setattr(outbox_module.json, "loads",
                        lambda text, *a, **k: reads.append(1) or real_loads(text, *a, **k))
    for _ in range(5):
        assert outbox.deliver_due()[0] == 0
    assert reads == []  # waiting mail costs a stat per pass, not a read and a parse
    # Another process (`mailbot outbox resend`) makes it due now by rewriting the file.
    path = tmp_path / "outbox" / "queue" / "w1.json"
    record = real_loads(path.read_text())
    record["next_try"] = clock.now().isoformat()
    import os
    path.write_text(json.dumps(record))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    sink.start()
    try:
        assert outbox.deliver_due()[0] == 1
        assert len(sink.wait_count(1)) == 1
    finally:
        sink.stop()


def test_fresh_mail_is_sent_from_memory_unless_its_file_was_rewritten(tmp_path, monkeypatch):
    import json
    import os

    import mailbot.outbox as outbox_module
    from mailbot.models import OutgoingMail

    class Recorder:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def send(self, mail: OutgoingMail) -> None:
            self.sent.append(mail.message)

    clock = FakeClock(dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc))
    relay = Recorder()
    outbox = Outbox(tmp_path / "outbox", relay, clock)
    mail = lambda name, body: OutgoingMail(  # noqa: E731
        name, "mailbot@example.com", ("a@example.com",), b"Subject: t\r\n\r\n" + body)
    outbox.enqueue(mail("f1", b"one\r\n"))
    outbox.enqueue(mail("f2", b"two\r\n"))
    # f2's file is replaced behind this process's back (another process's resend, say):
    # the bytes on disk win over the copy in memory.
    path = tmp_path / "outbox" / "queue" / "f2.json"
    record = json.loads(path.read_text())
    record["mail"]["message"] = "Subject: t\r\n\r\nrewritten\r\n"
    path.write_text(json.dumps(record))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    reads = []
    real_loads = json.loads
    monkeypatch.setattr(outbox_module.json, "loads",
                        lambda text, *a, **k: reads.append(1) or real_loads(text, *a, **k))
    assert outbox.deliver_due()[0] == 2
    assert relay.sent == [b"Subject: t\r\n\r\none\r\n", b"Subject: t\r\n\r\nrewritten\r\n"]
    assert len(reads) == 1  # only f2 was read from disk
    # A new process has nothing in memory: it reads the queue (and checks the markers).
    outbox.enqueue(mail("f3", b"three\r\n"))
    again = Outbox(tmp_path / "outbox", relay, clock)
    assert again.deliver_due()[0] == 1 and relay.sent[-1].endswith(b"three\r\n")
    assert outbox.deliver_due()[0] == 0  # gone from the queue: the memory copy is unused


def test_a_queued_mail_keeps_every_field_through_its_file_form():
    from dataclasses import fields

    from mailbot.models import OutgoingMail

    mail = OutgoingMail("n.ack.0", "bot@example.com", ("a@example.com", "b@example.com"),
                        b"Subject: x\r\n\r\n\xff\xfe raw 8-bit\r\n", "id@example.com", "ack")
    record = mail.to_dict()
    assert set(record) == {f.name for f in fields(OutgoingMail)}
    assert OutgoingMail.from_dict(record) == mail
