"""The MIME layer: charsets, transfer encodings, headers, identity, attachments, size guard."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from mailbot.parsing import parse_mail
from mailbot.parsing.mime import MAX_LINES, MAX_TEXT, MAX_TEXT_LINES
from tests.support.parsing_corpus import LANG


def msg(headers: str, body: bytes) -> bytes:
    return headers.strip("\n").replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


BASIC = """From: Alice Smith <Alice@Example.com>
To: incidents@example.com, "Bob, B" <bob@example.com>
Cc: carol@example.com
Subject: [INC-4] update
Date: Tue, 3 Apr 2012 16:55:26 +0400
Message-ID: <abc.123@mail.example.com>
In-Reply-To: <root@example.com>
References: <root@example.com>
 <second@example.com>
"""


def test_headers_and_addresses():
    p = parse_mail(msg(BASIC + "Content-Type: text/plain\n", b"Phase: monitoring\r\n"), LANG)
    assert p.key == p.message_id == "abc.123@mail.example.com"
    assert (p.from_address, p.from_name) == ("alice@example.com", "Alice Smith")
    assert p.to == ("incidents@example.com", "bob@example.com") and p.cc == ("carol@example.com",)
    assert p.date == dt.datetime(2012, 4, 3, 12, 55, 26, tzinfo=dt.timezone.utc)
    assert p.date.utcoffset() is not None
    assert p.in_reply_to == ("root@example.com",)
    assert p.references == ("root@example.com", "second@example.com")
    assert p.thread_ids == ("root@example.com", "second@example.com")
    assert p.header("subject") == "[INC-4] update"
    assert p.headers[0] == ("from", "Alice Smith <Alice@Example.com>")
    assert p.envelope_sender is None
    assert p.content_type == "text/plain"
    assert p.fields.phase == "monitoring"


def test_envelope_sender_from_first_return_path():
    p = parse_mail(msg("Return-Path: <>\nReturn-Path: <x@y.z>\n" + BASIC, b"hi"), LANG)
    assert p.envelope_sender == ""
    p = parse_mail(msg("Return-Path: <Bounce@Lists.example.com>\n" + BASIC, b"hi"), LANG)
    assert p.envelope_sender == "Bounce@Lists.example.com"


@pytest.mark.parametrize("value", ["<MAILER-DAEMON>", "<mailer-daemon>", "MAILER-DAEMON"])
def test_postfix_pipes_null_sender_is_the_null_sender(value):
    # Postfix's pipe(8) default null_sender: a bounce's empty envelope, written as a name.
    p = parse_mail(msg(f"Return-Path: {value}\n" + BASIC, b"hi"), LANG)
    assert p.envelope_sender == ""
    # A real mailbox whose local part happens to be mailer-daemon keeps its address.
    p = parse_mail(msg("Return-Path: <MAILER-DAEMON@mx.example.com>\n" + BASIC, b"hi"), LANG)
    assert p.envelope_sender == "MAILER-DAEMON@mx.example.com"


def test_key_without_message_id_survives_redelivery():
    headers = BASIC.replace("Message-ID: <abc.123@mail.example.com>\n", "")
    first = parse_mail(msg(headers, b"Severity: SEV1\r\n"), LANG)
    again = parse_mail(msg("Return-Path: <a@b.c>\nReceived: from x by y; Tue, 3 Apr 2012\n"
                           + headers, b"Severity: SEV1\r\n"), LANG)
    other = parse_mail(msg(headers, b"Severity: SEV2\r\n"), LANG)
    assert first.message_id == "" and first.key.startswith("sha256:")
    assert len(first.key) == len("sha256:") + 64
    assert first.key == again.key
    assert first.key != other.key


def test_insane_message_id_falls_back_to_digest():
    for bad in ("<>", "<no-at-sign>", "<a@b> <c@d>", "<" + "x" * 600 + "@y>"):
        p = parse_mail(msg(BASIC.replace("<abc.123@mail.example.com>", bad), b"x"), LANG)
        assert p.message_id == "" and p.key.startswith("sha256:"), bad


def test_quoted_printable_soft_breaks_and_latin1():
    body = b"Summary: caf=E9 au lait est tomb=E9 en panne, la cha=EEne de paiement n'a=\r\nccepte plus rien\r\n"
    p = parse_mail(msg(BASIC + "Content-Type: text/plain; charset=ISO-8859-1\n"
                       "Content-Transfer-Encoding: quoted-printable\n", body), LANG)
    assert p.fields.summary == ("café au lait est tombé en panne, la chaîne de paiement "
                                "n'accepte plus rien")
    assert p.defects == ()


def test_base64_utf8():
    body = base64.encodebytes("Commander: Jörg Müller <jm@example.com>\n".encode())
    p = parse_mail(msg(BASIC + "Content-Type: text/plain; charset=utf-8\n"
                       "Content-Transfer-Encoding: base64\n", body), LANG)
    assert p.fields.commander == "Jörg Müller <jm@example.com>"


def test_unknown_charset_is_replaced_not_fatal():
    p = parse_mail(msg(BASIC + "Content-Type: text/plain; charset=x-klingon\n",
                       b"Phase: mitigating\r\n\xff\xfe oops\r\n"), LANG)
    assert p.fields.phase == "mitigating"
    assert "\ufffd" in p.new_text
    assert any("x-klingon" in d for d in p.defects)


def test_eight_bit_without_charset():
    p = parse_mail(msg(BASIC, "Impact: Zürich office\r\n".encode("latin-1")), LANG)
    assert p.fields.impact == "Zürich office"
    assert any("charset" in d for d in p.defects)


def test_non_text_codec_name_is_refused():
    p = parse_mail(msg(BASIC + "Content-Type: text/plain; charset=rot13\n", b"Phase: resolved\r\n"),
                   LANG)
    assert p.fields.phase == "resolved"
    assert p.defects


def test_alternative_prefers_plain_and_mixed_keeps_attachments():
    raw = msg(BASIC + 'Content-Type: multipart/mixed; boundary="M"\n', b"""--M\r
Content-Type: multipart/alternative; boundary="A"\r
\r
--A\r
Content-Type: text/plain; charset=utf-8\r
\r
Severity: SEV2\r
--A\r
Content-Type: text/html; charset=utf-8\r
\r
<p>Severity: SEV3</p>\r
--A--\r
--M\r
Content-Type: text/plain; charset=iso-8859-1; name="pm.txt"\r
Content-Disposition: attachment; filename="pm.txt"\r
\r
Cause: caf\xe9\r
--M\r
Content-Type: application/pdf; name="x.pdf"\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQK\r
--M--\r
""")
    p = parse_mail(raw, LANG)
    assert p.content_type == "multipart/mixed"
    assert p.fields.severity == "SEV2"
    assert [(a.filename, a.content_type) for a in p.attachments] == [
        ("pm.txt", "text/plain"), ("x.pdf", "application/pdf")]
    assert p.attachments[0].text.strip() == "Cause: café"
    assert p.attachments[1].size == 9 and p.attachments[1].text is None


def test_html_only_when_plain_is_empty():
    raw = msg(BASIC + 'Content-Type: multipart/alternative; boundary="A"\n', b"""--A\r
Content-Type: text/plain\r
\r
\r
--A\r
Content-Type: text/html\r
\r
<div><b>Phase:</b> Resolved</div>\r
--A--\r
""")
    assert parse_mail(raw, LANG).fields.phase == "resolved"


def test_missing_boundary_still_reads_the_text():
    raw = msg(BASIC + 'Content-Type: multipart/mixed; boundary="nope"\n', b"Phase: identified\r\n")
    p = parse_mail(raw, LANG)
    assert p.fields.phase == "identified"
    assert p.defects


def test_size_guard_truncates_for_field_reading():
    body = b"Severity: SEV2\r\n\r\n" + (b"x" * 1000 + b"\r\n") * 2200 + b"Phase: resolved\r\n"
    p = parse_mail(msg(BASIC, body), LANG)
    assert p.fields.severity == "SEV2"
    assert p.fields.phase is None  # beyond the cut
    assert any(str(MAX_TEXT) in d for d in p.defects)
    assert p.size == len(msg(BASIC, body))


def test_line_guards_bound_what_is_analysed():
    # Fields on top are read; what lies beyond each cut is not, and the defect says so.
    top = b"Severity: SEV2\r\n"
    text_lines = parse_mail(msg(BASIC, top + b"\r\n" * MAX_TEXT_LINES + b"Phase: resolved\r\n"),
                            LANG)
    assert text_lines.fields.severity == "SEV2" and text_lines.fields.phase is None
    assert any(str(MAX_TEXT_LINES) in d for d in text_lines.defects)
    raw_lines = msg(BASIC, top + b"=\r\n" * MAX_LINES + b"Phase: resolved\r\n")
    p = parse_mail(raw_lines, LANG)
    assert p.fields.severity == "SEV2" and p.fields.phase is None
    assert any(str(MAX_LINES) in d for d in p.defects)
    assert p.size == len(raw_lines)


def test_format_flowed_is_unwrapped():
    body = b"Summary: the payment gateway times out for \r\nevery request from EU\r\n\r\nthanks\r\n"
    p = parse_mail(msg(BASIC + "Content-Type: text/plain; format=flowed\n", body), LANG)
    assert p.fields.summary == "the payment gateway times out for every request from EU"


def test_format_flowed_in_rfc2231_form_is_unwrapped():
    # `format*=charset'lang'value` is a legal spelling of the same parameter; the email
    # package hands it back as a (charset, language, value) tuple, not a string.
    body = b"Summary: the payment gateway times out for  \r\nevery request from EU\r\n"
    p = parse_mail(msg(BASIC + "Content-Type: text/plain; format*=us-ascii''flowed;"
                       " delsp*=''yes\n", body), LANG)
    assert p.fields.summary == "the payment gateway times out for every request from EU"


def test_empty_and_headerless_input():
    for raw in (b"", b"\r\n\r\n", b"just text, no headers at all", b"\x00\xff" * 10):
        p = parse_mail(raw, LANG)
        assert p.key.startswith("sha256:")
        assert p.size == len(raw)
