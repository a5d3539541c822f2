"""The RFC 8601 reader, table-driven: real headers written by real MTAs, the RFC's own
examples, and the forgeries that a substring search believed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.parsing.authresults import parse_authentication_results


def unfold(value: str) -> str:
    """A header value as mailbot keeps it: CRLF before a blank removed (RFC 5322 2.2.3)."""
    return value.replace("\r\n", "")


# (where it came from, raw value, authserv-id, [(method, result, {property: value})]).
# Values are copied byte for byte from the archived messages (folds as CRLF + the
# original whitespace); only the header name was cut off.
REAL = [
    # OpenDKIM at lists.ozlabs.org, in linuxppc-dev's archive: Message-ID
    # <b28d8d04-8658-c4be-88e9-80f635debfd7@csgroup.eu>, 6 Oct 2022. The ";" inside the
    # comment made the old reader miss this pass.
    ("OpenDKIM, lists.ozlabs.org",
     "lists.ozlabs.org;\r\n\tdkim=pass (2048-bit key; unprotected) header.d=csgroup.eu "
     "header.i=@csgroup.eu header.a=rsa-sha256 header.s=selector1 header.b=pOeguXgX;\r\n"
     "\tdkim-atps=neutral",
     "lists.ozlabs.org",
     [("dkim", "pass", {"header.d": "csgroup.eu", "header.i": "@csgroup.eu",
                        "header.s": "selector1", "header.b": "pOeguXgX"}),
      ("dkim-atps", "neutral", {})]),
    # The same message: the SPF line, with ";" and "=" inside the comment.
    ("Postfix SPF policy, lists.ozlabs.org",
     "lists.ozlabs.org; spf=pass (sender SPF authorized) smtp.mailfrom=csgroup.eu "
     "(client-ip=40.107.12.73; helo=fra01-pr2-obe.outbound.protection.outlook.com; "
     "envelope-from=christophe.leroy@csgroup.eu; receiver=<UNKNOWN>)",
     "lists.ozlabs.org",
     [("spf", "pass", {"smtp.mailfrom": "csgroup.eu"})]),
    # OpenDKIM and OpenDMARC at mail.kernel.org, in linux-mm's archive: Message-ID
    # <20190612222934.y74wxy3aju6eqs4r@ca-dmjordan1.us.oracle.com>, 12 Jun 2019.
    ("OpenDKIM, mail.kernel.org",
     "mail.kernel.org;\r\n\tdkim=pass (2048-bit key) header.d=oracle.com "
     "header.i=@oracle.com header.b=\"lhk5qU4z\"",
     "mail.kernel.org",
     [("dkim", "pass", {"header.d": "oracle.com", "header.b": "lhk5qU4z"})]),
    ("OpenDMARC, mail.kernel.org",
     "mail.kernel.org; dmarc=fail (p=none dis=none) header.from=oracle.com",
     "mail.kernel.org",
     [("dmarc", "fail", {"header.from": "oracle.com"})]),
    # Gmail, the same message as it reached Gmail: no header.d, only header.i.
    ("Gmail, mx.google.com",
     "mx.google.com;\r\n       dkim=pass header.i=@oracle.com header.s=corp-2018-07-02 "
     "header.b=lhk5qU4z;\r\n       spf=pass (google.com: domain of "
     "daniel.m.jordan@oracle.com designates 156.151.31.86 as permitted sender) "
     "smtp.mailfrom=daniel.m.jordan@oracle.com;\r\n       dmarc=pass (p=NONE sp=NONE "
     "dis=NONE) header.from=oracle.com",
     "mx.google.com",
     [("dkim", "pass", {"header.i": "@oracle.com", "header.d": None}),
      ("spf", "pass", {"smtp.mailfrom": "daniel.m.jordan@oracle.com"}),
      ("dmarc", "pass", {"header.from": "oracle.com"})]),
    # OpenDKIM at linuxppc-dev again (14 Feb 2023, a patch from philmd@linaro.org): a
    # reason, then the comment, then an unquoted header.b with a "/" in it.
    ("OpenDKIM fail with a reason",
     "lists.ozlabs.org;\r\n\tdkim=fail reason=\"signature verification failed\" "
     "(2048-bit key; unprotected) header.d=linaro.org header.i=@linaro.org "
     "header.a=rsa-sha256 header.s=google header.b=FL1ODDD/;\r\n\tdkim-atps=neutral",
     "lists.ozlabs.org",
     [("dkim", "fail", {"header.d": "linaro.org", "header.b": "FL1ODDD/"}),
      ("dkim-atps", "neutral", {})]),
    # kernel.org's relay and Microsoft 365, in stable@vger.kernel.org's archive:
    # Message-ID <b437b07b-bc62-421b-9a5f-5fa414fc8b5f@arm.com>, 9 Jun 2025.
    ("two signatures, smtp.subspace.kernel.org",
     "smtp.subspace.kernel.org;\r\n\tdkim=pass (1024-bit key) header.d=arm.com "
     "header.i=@arm.com header.b=\"jvq+hZad\";\r\n\tdkim=pass (1024-bit key) "
     "header.d=arm.com header.i=@arm.com header.b=\"jvq+hZad\"",
     "smtp.subspace.kernel.org",
     [("dkim", "pass", {"header.d": "arm.com"}), ("dkim", "pass", {"header.d": "arm.com"})]),
    ("ARC, smtp.subspace.kernel.org",
     "smtp.subspace.kernel.org; arc=fail smtp.client-ip=40.107.130.17",
     "smtp.subspace.kernel.org",
     [("arc", "fail", {"smtp.client-ip": "40.107.130.17"})]),
    # The payload of Microsoft's ARC-Authentication-Results (after "i=2;") in the same
    # message: a version after the id, `action=none` (no dot), and "dkim=[...]" inside a
    # comment, which is no result.
    ("Microsoft 365 ARC payload",
     "mx.microsoft.com 1; spf=pass (sender ip is\r\n 4.158.2.129) "
     "smtp.rcpttodomain=lists.infradead.org smtp.mailfrom=arm.com;\r\n dmarc=pass "
     "(p=none sp=none pct=100) action=none header.from=arm.com;\r\n dkim=pass (signature "
     "was verified) header.d=arm.com; arc=pass (0 oda=1 ltdi=1\r\n "
     "spf=[1,1,smtp.mailfrom=arm.com] dkim=[1,1,header.d=arm.com]\r\n "
     "dmarc=[1,1,header.from=arm.com])",
     "mx.microsoft.com",
     [("spf", "pass", {"smtp.mailfrom": "arm.com"}),
      ("dmarc", "pass", {"action": "none", "header.from": "arm.com"}),
      ("dkim", "pass", {"header.d": "arm.com"}),
      ("arc", "pass", {})]),
    # RFC 8601 Appendix B.3 and B.6.
    ("RFC 8601 B.3",
     "example.com;\r\n          spf=pass smtp.mailfrom=example.net",
     "example.com", [("spf", "pass", {"smtp.mailfrom": "example.net"})]),
    ("RFC 8601 B.6",
     "example.com;\r\n          dkim=pass (good signature) header.d=mail-router.example.net;"
     "\r\n          dkim=fail (bad signature) header.d=newyork.example.com",
     "example.com",
     [("dkim", "pass", {"header.d": "mail-router.example.net"}),
      ("dkim", "fail", {"header.d": "newyork.example.com"})]),
]


@pytest.mark.parametrize("where,raw,authserv,expected", REAL, ids=[r[0] for r in REAL])
def test_real_headers(where, raw, authserv, expected):
    got = parse_authentication_results(unfold(raw))
    assert got is not None, where
    assert got.authserv_id == authserv
    assert [(r.method, r.result) for r in got.results] == [(m, r) for m, r, _ in expected]
    for result, (_, _, props) in zip(got.results, expected, strict=True):
        for name, value in props.items():
            assert result.prop(name) == value, (where, name)


# Values that are no Authentication-Results at all: nothing in them may be believed.
MALFORMED = [
    # An encoded word: after RFC 2047 decoding it would read "mx.example.com", but the MTA
    # stripping its own id never saw that token.
    ("encoded authserv-id", "=?utf-8?q?mx.example.com?=; dkim=pass header.d=example.com"),
    # Microsoft 365 writes its own header with no authserv-id (X-MS-Exchange-
    # Authentication-Results in the 9 Jun 2025 message above): anyone can write that.
    ("no authserv-id, Microsoft 365",
     "spf=pass (sender IP is 4.158.2.129)\r\n smtp.mailfrom=arm.com; dkim=pass (signature "
     "was verified)\r\n header.d=arm.com;dmarc=pass action=none header.from=arm.com;"),
    ("only a comment after the id", "mx.example.com (; dkim=pass header.d=example.com)"),
    ("no separator", "mx.example.com dkim=pass header.d=example.com"),
    ("unterminated comment", "mx.example.com; dkim=pass (oops header.d=example.com"),
    ("unterminated quote", 'mx.example.com; dkim=pass header.d="example.com'),
    ("empty", ""),
    ("id only", "mx.example.com"),
]


@pytest.mark.parametrize("what,raw", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_values_are_none(what, raw):
    assert parse_authentication_results(unfold(raw)) is None


def _dkim(raw: str) -> list[tuple[str, str | None]]:
    got = parse_authentication_results(raw)
    assert got is not None
    return [(r.result, r.prop("header.d")) for r in got.results if r.method == "dkim"]


# (what, raw, the dkim results it really holds as (result, header.d))
STRUCTURE = [
    ("a dkim=pass inside another method's value",
     "mx.example.com; spf=pass smtp.mailfrom=dkim=pass+header.d=example.com@evil.example",
     []),
    ("a dkim=pass inside a comment",
     "mx.example.com; spf=pass (dkim=pass header.d=example.com) smtp.mailfrom=evil.example",
     []),
    ("a dkim=pass inside a quoted reason",
     'mx.example.com; dkim=fail reason="x; dkim=pass header.d=example.com" '
     "header.d=evil.example",
     [("fail", "evil.example")]),
    ("nested comments holding ;", "mx.example.com; dkim=pass (a (b; c) d) header.d=example.com",
     [("pass", "example.com")]),
    ("blanks everywhere CFWS may be",
     "mx.example.com ; dkim = pass header . d = example.com", [("pass", "example.com")]),
    ("a method version", "mx.example.com; dkim/1=pass header.d=example.com",
     [("pass", "example.com")]),
    ("a quoted property value", 'mx.example.com; dkim=pass header.d="example.com"',
     [("pass", "example.com")]),
    ("header.d stated twice, differently: ambiguous",
     "mx.example.com; dkim=pass header.d=evil.example header.d=example.com",
     [("pass", None)]),
    ("an unreadable result is dropped alone",
     "mx.example.com; dkim=pass header.d=example.com garbage; dkim=fail header.d=x.example",
     [("fail", "x.example")]),
    ("case", "mx.example.com; DKIM=Pass Header.D=example.com", [("pass", "example.com")]),
]


@pytest.mark.parametrize("what,raw,expected", STRUCTURE, ids=[s[0] for s in STRUCTURE])
def test_structure(what, raw, expected):
    assert _dkim(raw) == expected


def test_no_result_and_ids_as_written():
    none = parse_authentication_results("example.org 1; none")  # RFC 8601 B.2
    assert none is not None and none.results == () and none.version == "1"
    quoted = parse_authentication_results('"mx.example.com"; dkim=pass header.d=example.com')
    # Kept with its quotes: it is not the bare token an MTA strips.
    assert quoted is not None and quoted.authserv_id == '"mx.example.com"'
    commented = parse_authentication_results("(relay) mx.example.com; dkim=pass header.d=a.b")
    assert commented is not None and commented.authserv_id == "mx.example.com"


def test_bounded_on_absurd_input():
    raw = "mx.example.com; " + "(" * 50_000 + ")" * 50_000
    assert parse_authentication_results(raw) is None
    many = "mx.example.com" + "; dkim=pass header.d=example.com" * 2_000
    got = parse_authentication_results(many)
    assert got is not None and 0 < len(got.results) <= 600


ALPHABET = "ab.-=;/()\"\\@ \t0123456789dkimpasheror"


@given(st.text(alphabet=ALPHABET, max_size=200) | st.text(max_size=200))
@settings(max_examples=500, deadline=None)
def test_never_raises_and_results_are_well_formed(value):
    got = parse_authentication_results(value)
    if got is not None:
        assert got.authserv_id and all(r.method and r.result for r in got.results)
