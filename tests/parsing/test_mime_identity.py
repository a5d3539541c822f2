"""Who a message is from, read from the raw header before any display name is decoded
(RFC 2047 section 5: an encoded word is never part of an address)."""

from __future__ import annotations

import pytest

from mailbot.parsing import parse_mail
from mailbot.parsing.mime import read_mailbox
from tests.support.parsing_corpus import LANG


def with_from(value: bytes) -> bytes:
    return (b"From: " + value + b"\r\nTo: incidents@example.com\r\nSubject: x\r\n"
            b"Message-ID: <m@x>\r\n\r\nbody\r\n")


# (what, raw From value, (name, address) mailbot must read)
FROM = [
    ("plain", b"Alice <alice@example.com>", ("Alice", "alice@example.com")),
    ("bare address", b"alice@example.com", ("", "alice@example.com")),
    ("encoded name, decoded for showing", b"=?utf-8?q?Alice_M=C3=BCller?= <alice@example.com>",
     ("Alice Müller", "alice@example.com")),
    ("an address hidden in an encoded word: the header is ambiguous",
     b"=?utf-8?q?Alice_<alice@example.com>?= <eve@evil.example>", ("", "")),
    ("an address in a properly encoded name stays a name",
     b"=?utf-8?q?Alice_=3Calice@example.com=3E?= <eve@evil.example>",
     ("Alice <alice@example.com>", "eve@evil.example")),
    ("an encoded word is no address", b"=?utf-8?q?alice@example.com?=", ("", "")),
    ("a quoted name holding an address", b'"Alice <alice@example.com>" <eve@evil.example>',
     ("Alice <alice@example.com>", "eve@evil.example")),
    ("raw 8-bit beside the trick",
     b"=?utf-8?q?Alice_<alice@example.com>?= \xc3\xa9 <eve@evil.example>", ("", "")),
    ("raw 8-bit name (RFC 6532)", b"\xc3\xa9lise <elise@example.com>",
     ("\u00e9lise", "elise@example.com")),
    ("two authors: nobody can say which one wrote",
     b"Alice <alice@example.com>, Eve <eve@evil.example>", ("", "")),
    ("folded", b"Alice\r\n <alice@example.com>", ("Alice", "alice@example.com")),
]


@pytest.mark.parametrize("what,raw,expected", FROM, ids=[f[0] for f in FROM])
def test_from_is_read_from_the_raw_header(what, raw, expected):
    mail = parse_mail(with_from(raw), LANG)
    assert (mail.from_name, mail.from_address) == expected


@pytest.mark.parametrize("what,raw,expected", FROM, ids=[f[0] for f in FROM])
def test_read_mailbox_agrees(what, raw, expected):
    assert read_mailbox(raw.decode("utf-8").replace("\r\n", "")) == expected


def test_to_is_read_from_the_raw_header_too():
    raw = (b"From: alice@example.com\r\n"
           b"To: =?utf-8?q?incidents@example.com?= <x@evil.example>\r\n\r\nbody\r\n")
    assert parse_mail(raw, LANG).to == ("x@evil.example",)


def test_raw_headers_keep_encoded_words_and_unfold():
    raw = (b"From: alice@example.com\r\nAuthentication-Results: =?utf-8?q?mx.example.com?=;"
           b"\r\n\tdkim=pass header.d=example.com\r\n\r\nbody\r\n")
    mail = parse_mail(raw, LANG)
    assert mail.raw_header_all("Authentication-Results") == [
        "=?utf-8?q?mx.example.com?=; dkim=pass header.d=example.com"]
    assert mail.header("authentication-results").startswith("mx.example.com;")
