"""Injection through every field mailbot copies into the mail it writes.

What reaches a header: the subject (as the incident title, in every subject mailbot
writes, and as `original_subject` in rejections), the sender's address (To of rejections
and status replies), the commander (To of stale reminders), Message-ID / References
(In-Reply-To, References). Display names, roles, channel, summary, impact and services
reach bodies only, in text and in the digest's HTML. Each field below carries template
syntax, HTML and, where it can, an encoded CR LF with a forged header: they must come out
as literal text, escaped in HTML, and never as a new header or recipient.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json

from mailbot.digest import collect_digest, compose_digest
from mailbot.models import OutgoingMail
from mailbot.reminders import send_stale_reminder
from mailbot.runtime import build_runtime
from tests.support import free_port, load

EVIL = "{{ 7*7 }} {% if 1 %}yes{% endif %} <script>alert(1)</script> &amp;"
CRLF_BCC = "=?utf-8?q?x=0D=0ABcc=3A_evil=40evil.example=0D=0A=0D=0Abody?="
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
HEADER = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
          "References",
          "Auto-Submitted", "X-Auto-Response-Suppress", "X-Loop", "X-Mailbot-Kind",
          "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition")


def raw_mail(subject: str, body: str, message_id: str, extra: str = "") -> bytes:
    head = (f"From: {CRLF_BCC} <alice@example.com>\r\nTo: incidents@example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
            "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n" + extra)
    return (head + "\r\n" + body.replace("\n", "\r\n")).encode()


DECLARE = f"""Severity: SEV2
Phase: investigating
Commander: {EVIL} <alice@example.com>
Channel: #inc {EVIL}
Roles: comms={EVIL}, liaison=carol@example.com
Summary: {EVIL}
Impact: {EVIL}
Customer-Impact: yes
Services: api, {EVIL}

{EVIL}
"""


def check_headers(mail: OutgoingMail, allowed_rcpts: set[str]) -> email.message.EmailMessage:
    head, _, _ = mail.message.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue  # folded continuation
        name = line.split(b":", 1)[0].decode()
        assert name in HEADER, f"{mail.kind}: unexpected header line {line[:80]!r}"
    assert set(mail.recipients) <= allowed_rcpts, (mail.kind, mail.recipients)
    msg = email.message_from_bytes(mail.message, policy=email.policy.default)
    assert msg["Bcc"] is None and "evil" not in str(msg["To"]) + str(msg["Cc"] or "")
    for name in ("From", "To", "Subject"):
        assert len(msg.get_all(name)) == 1
    return msg


def parts(msg: email.message.EmailMessage) -> tuple[str, str | None]:
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",))
    return text, html.get_content() if html is not None and html.get_content_type() == \
        "text/html" else None


def queued(rt) -> list[OutgoingMail]:
    return [OutgoingMail.from_dict(json.loads(p.read_text())["mail"])
            for p in sorted(rt.outbox.queue.glob("*.json"))]


def test_template_html_and_header_injection_in_every_field(tmp_path):
    rt = build_runtime(load(tmp_path, smtp_port=free_port()))
    # carol is the declaration's liaison: she alone gets the draft customer update.
    allowed = {"incidents@example.com", "alice@example.com", "carol@example.com"}
    subject = f"[DECLARE] {EVIL} {CRLF_BCC}"
    rt.spool.put(raw_mail(subject, DECLARE, "inj1@x"), "pipe")
    # A follow-up missing its phase: rejected to the sender, quoting her subject.
    rt.spool.put(raw_mail(f"Re: [INC-1] {EVIL} {CRLF_BCC}", f"Severity: SEV1\n\n{EVIL}\n",
                          "inj2@x"), "pipe")
    rt.spool.put(raw_mail(f"[STATUS] {EVIL}", "", "inj3@x"), "pipe")
    rt.pipeline.process_pending()
    assert rt.spool.failed_names() == []
    incident = rt.store.get(1)
    assert incident is not None and "{{ 7*7 }}" in incident.title
    assert incident.channel and "<script>" in incident.channel

    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    assert send_stale_reminder(rt, incident, later) == 1
    digest = compose_digest(rt, collect_digest(rt, later), "job:digest:inj")

    mails = [*queued(rt), digest]
    kinds = sorted(m.kind for m in mails)
    assert kinds == ["ack", "customer_statement", "digest", "rejection", "reminder_stale",
                     "status"], kinds
    for mail in mails:
        msg = check_headers(mail, allowed)
        subj = str(msg["Subject"])
        if mail.kind in ("ack", "rejection"):
            assert "{{ 7*7 }}" in subj and "<script>alert(1)</script>" in subj, subj
        assert "49" not in subj.replace("2026", "")
        text, html = parts(msg)
        assert "{{ 7*7 }}" in text, f"{mail.kind}: template syntax not kept literally"
        assert "{% if 1 %}yes{% endif %}" in text or mail.kind == "status"
        if html is not None:
            assert "<script>" not in html, f"{mail.kind}: unescaped script in HTML"
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
            assert "{{ 7*7 }}" in html and "&amp;amp;" in html

    digest_html = parts(email.message_from_bytes(digest.message, policy=email.policy.default))[1]
    assert digest_html is not None and "&lt;script&gt;" in digest_html  # the HTML was checked
    ack = next(m for m in mails if m.kind == "ack")
    text, _ = parts(email.message_from_bytes(ack.message, policy=email.policy.default))
    # Every field's value travels into the ack's body literally.
    assert text.count("<script>alert(1)</script>") >= 4, text
    rejection = next(m for m in mails if m.kind == "rejection")
    assert rejection.recipients == ("alice@example.com",)
    reminder = next(m for m in mails if m.kind == "reminder_stale")
    assert reminder.recipients[0] == "alice@example.com"
    rt.close()
