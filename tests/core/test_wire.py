"""The wire writer (mailbot/wire.py) through the composer: whatever text goes in, the
stdlib's strict parser (policy.default) reads back exactly that text, with no defects, no
extra header and no line over 998 octets."""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.policy
import email.utils
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mailbot import wire
from mailbot.compose import Composer, clean_header, make_environment

NOW = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.timezone.utc)
HEADERS = {"from", "to", "subject", "date", "message-id", "in-reply-to", "references",
           "auto-submitted", "x-auto-response-suppress", "x-loop", "x-mailbot-kind",
           "mime-version", "content-type", "content-transfer-encoding"}


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("templates")
    (root / "mail").mkdir()
    (root / "mail" / "probe.txt").write_text(
        "{% block subject %}{{ subject }}{% endblock %}\n"
        "{% block body %}{{ body }}{% endblock %}\n")
    (root / "mail" / "both.txt").write_text(
        "{% block subject %}{{ subject }}{% endblock %}\n"
        "{% block body %}{{ body }}{% endblock %}\n")
    (root / "mail" / "both.html").write_text("<p>{{ body }}</p>")
    return root


def composer(templates: Path, name: str = "Incidents bot") -> Composer:
    return Composer(make_environment(templates), "mailbot@example.com", name)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def all_defects(msg) -> list:
    found = []
    for part in msg.walk():
        found.extend(part.defects)
        for name, value in part.items():
            found.extend(getattr(value, "defects", ()))
    return found


def display_name(raw: bytes) -> str:
    """The From display name decoded as RFC 2047 6.2 says (blanks between adjacent encoded
    words dropped). policy.default keeps them inside a phrase: its own output for a long
    non-ASCII name does not read back either, so it cannot be the judge here."""
    value = email.message_from_bytes(raw)["From"]  # compat32: the raw, unfolded text
    name, _ = email.utils.parseaddr(value)
    return str(email.header.make_header(email.header.decode_header(name)))


def check_wire(raw: bytes, *, ascii_only: bool = True) -> None:
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    assert b"\n" not in raw.replace(b"\r\n", b""), "a bare LF on the wire"
    assert b"\r" not in raw.replace(b"\r\n", b""), "a bare CR on the wire"
    if ascii_only:
        assert raw.isascii()


# Any text, including control characters, line breaks, "=?" look-alikes, quotes,
# surrogates and characters outside the BMP.
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
tricky = st.sampled_from([
    "=?utf-8?q?=FF?=", "Bcc: victim@example.com", "a\r\nBcc: x@y", "\u2028\u2029\x85",
    "café ünïcödé ✓ 😀", '"quoted" \\ back', "x" * 500, " ", "", "日本語の件名" * 20,
])
subjects = st.one_of(any_text, tricky, st.lists(tricky, max_size=4).map(" ".join))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(subject=subjects, body=st.one_of(any_text, tricky), name=st.one_of(any_text, tricky))
def test_any_subject_body_and_name_read_back_exactly(templates, subject, body, name):
    c = composer(templates, name=name)
    mail = c.compose("probe", name="p.probe.0", to=["incidents@example.com"], now=NOW,
                     in_reply_to="orig@example.com", references=["root@example.com"],
                     subject=subject, body=body)
    check_wire(mail.message)
    msg = parse(mail.message)
    assert all_defects(msg) == []
    assert {k.lower() for k in msg.keys()} == HEADERS  # nothing injected, nothing lost
    assert str(msg["subject"]) == clean_header(subject)
    expected_body = body.replace("\r\n", "\n").replace("\r", "\n")
    got = msg.get_content().replace("\r\n", "\n")
    assert got.rstrip("\n") == expected_body.rstrip("\n")
    assert msg["from"].addresses[0].addr_spec == "mailbot@example.com"
    assert display_name(mail.message) == clean_header(name)
    assert msg["references"] == "<root@example.com> <orig@example.com>"
    assert msg["in-reply-to"] == "<orig@example.com>"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(body=st.one_of(any_text, tricky), filename=st.one_of(any_text, tricky))
def test_alternative_and_attachment_read_back(templates, body, filename):
    data = ("BEGIN:VCALENDAR\r\n" + body + "\r\nEND:VCALENDAR\r\n").encode("utf-8")
    mail = composer(templates).compose(
        "both", name="p.both.0", to=["a@example.com"], cc=["b@example.com"], now=NOW,
        attachments=[(filename, "text/calendar", data)], subject="s", body=body)
    check_wire(mail.message)
    msg = parse(mail.message)
    assert all_defects(msg) == []
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attached = msg.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    plain, html = alternative.get_payload()
    assert plain.get_content().replace("\r\n", "\n").rstrip("\n") == \
        body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    assert html.get_content_type() == "text/html"
    assert attached.get_content_type() == "text/calendar"
    assert attached.get_payload(decode=True) == data
    assert (attached.get_filename() or "") == clean_header(filename)
    assert mail.recipients == ("a@example.com", "b@example.com")


def test_the_same_mail_twice_is_the_same_bytes(templates):
    """A re-run after a crash must make the very same mail (boundaries included)."""
    make = lambda: composer(templates).compose(  # noqa: E731
        "both", name="p.both.0", to=["a@example.com"], now=NOW,
        attachments=[("x.ics", "text/calendar", b"X")], subject="s", body="b")
    assert make().message == make().message


def test_boundary_never_appears_in_the_content():
    seed = "m@example.com"
    first = next(wire._boundaries(seed, b""))
    body = f"--{first}\r\n".encode()  # a body that quotes the boundary it would get
    raw = wire.assemble(["Subject: x"], body.decode(), html="<p>x</p>", seed=seed)
    msg = parse(raw)
    assert msg.get_boundary() != first
    plain, html = msg.get_payload()
    assert plain.get_content().rstrip("\r\n") == f"--{first}"


def test_long_ascii_subject_is_folded_at_blanks():
    value = " ".join(f"word{i}" for i in range(60))
    field = wire.text_header("Subject", value)
    lines = field.split("\r\n")
    assert len(lines) > 1 and all(len(line) <= 78 for line in lines)
    assert all(line.startswith(" ") for line in lines[1:])
    assert str(parse((field + "\r\n\r\n").encode())["subject"]) == value


def test_encoded_words_stay_within_rfc2047_limits():
    field = wire.text_header("Subject", "é" * 200 + "😀" * 50)
    for line in field.split("\r\n"):
        for word in line.split():
            if word.startswith("=?"):
                assert len(word) <= 75
    assert str(parse((field + "\r\n\r\n").encode())["subject"]) == "é" * 200 + "😀" * 50


def test_malformed_message_ids_are_dropped_not_written():
    field = wire.msgid_header("References", ["ok@x", "bad id@x", "<evil>@x", "ünï@x", ""])
    assert field == "References: <ok@x>"
    assert wire.msgid_header("In-Reply-To", ["a b"]) == ""


def test_non_ascii_address_is_written_as_utf8_for_smtputf8():
    field = wire.address_header("To", ["jörg@example.com", "Ann <ann@example.com>"])
    assert field == "To: jörg@example.com, Ann <ann@example.com>"


def test_a_long_non_ascii_name_is_folded_into_short_encoded_words():
    """formataddr made one encoded word of the whole name: 400 characters of it passed
    the 998-octet line limit (found by the property test above)."""
    name = "Störungsmeldung " * 25
    field = "From: " + wire.mailbox(name.strip(), "bot@example.com")
    lines = field.split("\r\n")
    assert len(lines) > 5 and all(len(line) <= 78 for line in lines)
    raw = (field + "\r\n\r\n").encode()
    assert raw.isascii()
    assert display_name(raw) == name.strip()


def test_ascii_words_of_a_non_ascii_subject_stay_readable():
    value = "[INC-7] Declared: Zahlungen — schlagen fehl für alle (SEV2, investigating)"
    field = wire.text_header("Subject", value)
    assert field.startswith("Subject: [INC-7] Declared: Zahlungen =?utf-8?b?")
    assert "(SEV2, investigating)" in field.replace("\r\n ", " ")
    assert str(parse((field + "\r\n\r\n").encode())["subject"]) == value
    assert str(email.header.make_header(email.header.decode_header(
        email.message_from_bytes((field + "\r\n\r\n").encode())["Subject"]))) == value


def test_message_ids_are_stable_per_instance_and_differ_between_lists():
    env = make_environment(Path(__file__).resolve().parents[2] / "templates")
    ops = Composer(env, "mailbot@example.com", "ops", list_address="ops@example.com")
    ops_again = Composer(env, "mailbot@example.com", "ops", list_address="ops@example.com")
    db = Composer(env, "mailbot@example.com", "db", list_address="db-incidents@example.com")
    name = "c6e9179c9de9a6760ffd.digest.0"
    # The same mail after a crash and restart: the same id, so it is never sent as new.
    assert ops.message_id_for(name) == ops_again.message_id_for(name)
    # Two lists whose bots share a domain: a reader on both keeps both digests.
    assert ops.message_id_for(name) != db.message_id_for(name)
    assert ops.message_id_for(name).endswith("@example.com")
