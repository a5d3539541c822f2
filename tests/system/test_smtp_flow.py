"""End to end through the real SMTP ingress and a real SMTP sink as the relay."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys

import pytest

from mailbot.daemon import Daemon
from mailbot.runtime import build_runtime
from tests.support import (DECLARATION_BODY, REPO, free_port, load, message, send,
                                wait_for, write_config)


def test_declaration_is_acknowledged_to_the_list_in_thread(daemon, sink):
    send(daemon.port, message("[DECLARE] Checkout down", DECLARATION_BODY, message_id="d1@x"))
    got = sink.wait_count(1)[0]
    msg = got.message
    assert got.rcpt_tos == ["incidents@example.com"]
    assert msg["In-Reply-To"] == "<d1@x>"
    assert "[INC-1]" in msg["Subject"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"].addresses[0].addr_spec == "mailbot@example.com"
    assert msg["Reply-To"] == "incidents@example.com"  # a plain Reply reaches the team
    assert msg["Message-ID"] and msg["Date"]
    body = msg.get_content()
    assert "SEV1:" in body and "SEV4:" in body  # the severity definitions travel with it
    incident = daemon.rt.store.get(1)
    assert incident.severity == "SEV2" and incident.commander == "alice@example.com"


def test_oversized_message_is_refused_and_serving_goes_on(daemon, sink):
    big = message("[DECLARE] big", "x" * (daemon.rt.config.smtp.max_message_size + 10))
    with smtplib.SMTP("127.0.0.1", daemon.port) as s:
        with pytest.raises(smtplib.SMTPException) as err:
            s.sendmail("alice@example.com", ["incidents@example.com"], big)
    code = getattr(err.value, "smtp_code", None)
    assert code == 552
    send(daemon.port, message("[DECLARE] small", DECLARATION_BODY, message_id="s1@x"))
    assert "[INC-1]" in sink.wait_count(1)[0].message["Subject"]
    assert daemon.rt.spool.pending() == [] or wait_for(lambda: daemon.rt.spool.pending() == [])


def test_follow_up_without_phase_is_rejected_to_sender_only(daemon, sink):
    send(daemon.port, message("[DECLARE] API slow", DECLARATION_BODY, message_id="d2@x"))
    sink.wait_count(1)
    follow = message("Re: [INC-1] API slow", "Severity: SEV1\nCommander: alice@example.com\n\n"
                     "It got worse.", sender="carol@example.com", message_id="f1@x",
                     headers={"In-Reply-To": "<d2@x>"})
    send(daemon.port, follow, mail_from="carol@example.com")
    got = sink.wait_count(2)[1]
    assert got.rcpt_tos == ["carol@example.com"]
    body = got.message.get_content()
    assert "Phase:" in body and "not applied" in body.lower()
    incident = daemon.rt.store.get(1)
    assert incident.severity == "SEV2"  # unchanged
    assert incident.rejected_count == 1
    rejected = incident.timeline[-1]
    assert rejected.kind == "rejected"
    assert "It got worse." in rejected.text  # its own words, for its fold on the site


def test_duplicate_message_id_is_processed_once(daemon, sink):
    raw = message("[DECLARE] twice", DECLARATION_BODY, message_id="dup@x")
    send(daemon.port, raw)
    send(daemon.port, raw)
    sink.wait_count(1)
    wait_for(lambda: daemon.rt.spool.pending() == [], what="spool drained")
    assert [i.id for i in daemon.rt.store.live_incidents()] == [1]
    assert len(sink.received) == 1


def test_header_injection_through_subject_is_neutralised(daemon, sink):
    # An encoded word that decodes to CR LF plus a forged header.
    subject = "[DECLARE] =?utf-8?q?boom=0D=0ABcc=3A_victim=40evil=2Eexample?="
    send(daemon.port, message(subject, DECLARATION_BODY, message_id="inj@x"))
    got = sink.wait_count(1)[0]
    assert got.rcpt_tos == ["incidents@example.com"]
    headers = got.data.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in headers and b"\nbcc:" not in headers.lower()
    assert "victim@evil.example" in got.message["Subject"]


def test_template_syntax_in_mail_comes_out_literally(daemon, sink):
    send(daemon.port, message("[DECLARE] {{ 7*7 }} {% if 1 %}x{% endif %}", DECLARATION_BODY,
                              message_id="tpl@x"))
    subject = sink.wait_count(1)[0].message["Subject"]
    assert "{{ 7*7 }}" in subject and "49" not in subject


def test_lmtp_answers_per_recipient(tmp_path, sink):
    port = free_port()
    config = load(tmp_path, smtp_port=port, relay_port=sink.port,
                  extra="")
    config = config.__class__(**{**config.__dict__,
                                 "smtp": config.smtp.__class__(host="127.0.0.1", port=port,
                                                               protocol="lmtp")})
    rt = build_runtime(config)
    d = Daemon(rt)
    d.start()
    try:
        # smtplib.LMTP reads a single DATA reply; RFC 2033 gives one per recipient, so
        # speak the protocol directly and read both.
        import socket
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            f = sock.makefile("rwb")

            def reply() -> list[bytes]:
                lines = []
                while True:
                    line = f.readline()
                    lines.append(line)
                    if line[3:4] != b"-":
                        return lines

            def cmd(text: bytes) -> list[bytes]:
                f.write(text + b"\r\n")
                f.flush()
                return reply()

            assert reply()[0].startswith(b"220")
            assert cmd(b"LHLO test")[-1].startswith(b"250")
            assert cmd(b"MAIL FROM:<alice@example.com>")[0].startswith(b"250")
            assert cmd(b"RCPT TO:<incidents@example.com>")[0].startswith(b"250")
            assert cmd(b"RCPT TO:<copy@example.com>")[0].startswith(b"250")
            assert cmd(b"DATA")[0].startswith(b"354")
            f.write(message("[DECLARE] via lmtp", DECLARATION_BODY, message_id="l1@x")
                    + b"\r\n.\r\n")
            f.flush()
            first, second = reply(), reply()
            assert first[0].startswith(b"250") and second[0].startswith(b"250")
            assert cmd(b"QUIT")[0].startswith(b"221")
        assert "[INC-1]" in sink.wait_count(1)[0].message["Subject"]
    finally:
        d.shutdown()
        rt.close()


def test_show_and_incidents_json_shape(daemon, sink, tmp_path):
    send(daemon.port, message("[DECLARE] Shape", DECLARATION_BODY, message_id="j1@x"))
    sink.wait_count(1)
    cfg = str(daemon.rt.config.path)
    out = subprocess.run([sys.executable, "-m", "mailbot", "show", "INC-1", "--json",
                          "--config", cfg], capture_output=True, text=True, cwd=REPO, check=True)
    data = json.loads(out.stdout)
    for key in ("id", "title", "status", "severity", "phase", "commander", "roles", "channel",
                "summary", "customer_impact", "services", "timeline"):
        assert key in data, key
    assert data["status"] == "open" and data["roles"] == {"comms": "bob@example.com"}
    out = subprocess.run([sys.executable, "-m", "mailbot", "incidents", "--json",
                          "--config", cfg], capture_output=True, text=True, cwd=REPO, check=True)
    assert [i["id"] for i in json.loads(out.stdout)] == [1]


def test_port_in_use_is_one_clear_line(tmp_path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path, smtp_port=port)
        out = subprocess.run([sys.executable, "-m", "mailbot", "serve", "--config", str(cfg)],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("mailbot:")]
    assert errors and f"{port}" in errors[0]
    assert "Traceback" not in out.stderr
