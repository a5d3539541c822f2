"""`mailbot serve` with SMTP and IMAP ingress side by side, end to end."""

from __future__ import annotations

import smtplib

from mailbot.daemon import Daemon
from mailbot.runtime import build_runtime
from tests.support import DECLARATION_BODY, SmtpSink, free_port, load, message


def test_serve_runs_smtp_and_imap_together(tmp_path, dovecot):
    sink = SmtpSink().start()
    secret = tmp_path / "imap-password"
    secret.write_text(dovecot.password + "\n")
    imap = f"""
[ingress.imap]
host = "{dovecot.host}"
port = {dovecot.port}
tls = "none"
username = "{dovecot.user}"
password_file = "{secret}"
start_at = "all"
connect_timeout = 10
"""
    smtp_port = free_port()
    config = load(tmp_path, smtp_port=smtp_port, relay_port=sink.port, extra=imap)
    rt = build_runtime(config)
    daemon = Daemon(rt)
    daemon.start()
    try:
        dovecot.append([message("[DECLARE] seen over IMAP", DECLARATION_BODY,
                                message_id="imap-1@x")])
        with smtplib.SMTP("127.0.0.1", smtp_port) as s:
            s.sendmail("alice@example.com", ["incidents@example.com"],
                       message("[DECLARE] sent over SMTP", DECLARATION_BODY,
                               message_id="smtp-1@x"))
        got = sink.wait_count(2, timeout=30)
        subjects = sorted(r.message["Subject"] for r in got)
        assert any("seen over IMAP" in s for s in subjects)
        assert any("sent over SMTP" in s for s in subjects)
        # The same message arriving by both routes is one incident, not two.
        with smtplib.SMTP("127.0.0.1", smtp_port) as s:
            s.sendmail("alice@example.com", ["incidents@example.com"],
                       message("[DECLARE] seen over IMAP", DECLARATION_BODY,
                               message_id="imap-1@x"))
        from tests.support import drained, wait_for
        wait_for(lambda: drained(daemon), what="daemon idle")
        assert sorted(i.title for i in rt.store.live_incidents()) == [
            "seen over IMAP", "sent over SMTP"]
        assert len(sink.received) == 2
    finally:
        daemon.shutdown()
        rt.close()
        sink.stop()
