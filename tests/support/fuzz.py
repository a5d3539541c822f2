"""Message mutation for the fuzz tests: real mail from the corpus, damaged in the ways mail
gets damaged (and attacked), driven either by hypothesis or by a seeded random.Random.

A mutation is a tuple (op, where, arg): `where` in [0, 1) is a position relative to the
message length, so the same ops apply to any seed message and shrink well.

Besides byte damage: RFC 2047 encoded words and body charsets in every codec name Python
knows (`CHARSETS`: `encodings.aliases` and the `encodings` modules, among them `utf-7`,
`raw-unicode-escape` and the non-text codecs), text that decodes to lone surrogates,
Dates far from now and Message-IDs that are broken in the ways that made two messages
share a key."""

from __future__ import annotations

import base64
import codecs
import encodings
import encodings.aliases
import pkgutil
import random

from tests.support.corpus import ERP, talon_fixtures  # real mail: see tests/support/corpus.py

TOKENS = [
    b"\r\n", b"\n", b"\r", b"\x00", b"\t", b" ", b"\xff", b"\xed\xa0\x80", b"\xc3", b"\x80",
    b"=?utf-8?B?", b"=?utf-8?Q?", b"?=", b"=?x-unknown?Q?=FF=0D=0A?=", b"=?utf-8?B?!!!?=",
    b"=?iso-2022-jp?B?GyRCJCIbKEI=?=", b"--", b"--zz\r\n", b"--zz--\r\n",
    b"\r\nContent-Type: multipart/mixed; boundary=zz\r\n",
    b"\r\nContent-Type: text/html; charset=utf-8\r\n",
    b"\r\nContent-Transfer-Encoding: base64\r\n", b"\r\nContent-Transfer-Encoding: quoted-printable\r\n",
    b"\r\nContent-Type: text/plain; charset=\"x-bogus\"\r\n", b"=\r\n", b"=FF", b"=0D=0A",
    b"Re: ", b"Fwd: ",
    b"\r\nSeverity: SEV1\r\n", b"\r\nPhase: resolved\r\n", b"\r\nCommander: alice@example.com\r\n",
    b"\r\nRoles: comms=bob@example.com, liaison=\r\n", b"\r\nCustomer-Impact: yes\r\n",
    b"\r\nIn-Reply-To: <", b"\r\nReferences: <a@b> <", b"\r\nMessage-ID: <x@y>\r\n",
    b"\r\n> ", b"\r\nOn Mon, Jan 1, 2024 at 10:00 AM Bob <bob@example.com> wrote:\r\n",
    b"\r\n-- \r\n", b"<b>", b"</", b"<script>", b"&#0;", b"&amp", b"{{ 7*7 }}", b"{%",
    b"\r\nAuto-Submitted: auto-replied\r\n", b"\r\nFrom: <>\r\n", b"<>", b"@", b",", b";", b":",
    b"\"", b"(", b")", b"\\",
]


def seeds() -> list[bytes]:
    """The corpus as whole messages: talon's .eml files; email_reply_parser bodies wrapped."""
    talon = talon_fixtures()
    out = [p.read_bytes() for p in sorted((talon / "standard_replies").glob("*.eml"))]
    for p in sorted(talon.glob("*.eml")):
        out.append(p.read_bytes())
    for p in sorted(ERP.glob("*.txt")):
        body = p.read_bytes()
        out.append(b"From: Alice <alice@example.com>\r\nTo: incidents@example.com\r\n"
                   b"Subject: Re: [INC-1] " + p.stem.encode() + b"\r\n"
                   b"Message-ID: <" + p.stem.encode() + b"@corpus>\r\n\r\n" + body)
    assert len(out) >= 30, f"corpus missing at {talon} and {ERP}"
    return out + LIST_TRAFFIC


# The list's own traffic, from an allowed sender: damage to these reaches the store, the
# outbox and the templates (most corpus mail comes from strangers and is only archived).
LIST_TRAFFIC = [
    b"From: Alice <alice@example.com>\r\nTo: incidents@example.com\r\n"
    b"Subject: [DECLARE] checkout down\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <declare@list>\r\n\r\nSeverity: SEV2\r\nPhase: investigating\r\n"
    b"Commander: alice@example.com\r\nChannel: #inc\r\nRoles: comms=bob@example.com\r\n"
    b"Summary: checkout fails\r\n\r\nCheckout is failing for EU customers.\r\n",
    b"From: Bob <bob@example.com>\r\nTo: incidents@example.com\r\n"
    b"Subject: Re: [INC-1] checkout down\r\nDate: Wed, 25 Nov 2026 11:00:00 +0000\r\n"
    b"Message-ID: <update@list>\r\nIn-Reply-To: <base@fuzz>\r\n\r\nSeverity: SEV1\r\n"
    b"Phase: mitigating\r\nCommander: bob@example.com\r\n\r\nRolled back the deploy.\r\n"
    b"\r\nOn Wed, Alice wrote:\r\n> Checkout is failing.\r\n",
]


TAGS = [b"[DECLARE] ", b"[INC-1] ", b"[SEV1]", b"[STATUS]", b"[POSTMORTEM] [INC-1] "]
# Text that some codec turns into lone surrogates (U+D800..U+DFFF), which no UTF-8 file
# can hold: utf-7 and the escape codecs, also outside encoded words.
SURROGATE_TOKENS = [
    b"+2AA-", b"+3/8-", b"\\ud800", b"\\udfff", b"\\ud83d\\ude00",
    b"=?utf-7?q?+2AA-?=", b"=?utf-7?B?KzJBQS0=?=", b"=?raw-unicode-escape?q?=5Cud800?=",
    b"=?unicode-escape?q?=5Cudc80x?=", b"=?utf-16-le?B?ANg=?=", b"=?utf-8?q?=ED=A0=80?=",
]
TOKENS += TAGS + SURROGATE_TOKENS


def _charsets() -> list[str]:
    """Every codec name Python can look up, as a mail would spell it."""
    names = set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
    names |= {m.name for m in pkgutil.iter_modules(encodings.__path__)}
    found = set()
    for name in names:
        try:
            codecs.lookup(name)
        except LookupError:
            continue  # platform-only codecs (mbcs, oem)
        found.add(name)
        found.add(name.replace("_", "-"))
    return sorted(found)


CHARSETS = _charsets()
SAMPLES = ["[DECLARE] db down", "Café ☃ — straße", "日本語の件名", "😀 Ωmega",
           "Severity: SEV1"]
FAR_DATES = [
    b"Fri, 31 Dec 9999 23:59:59 -2359", b"Mon, 1 Jan 0001 00:00:00 +2359",
    b"Thu, 1 Jan 1970 00:00:00 +0000", b"Sat, 25 Nov 2102 10:00:00 +0000",
    b"Tue, 31 Dec 1899 23:59:59 +9999", b"99999999999", b"Wed, 32 Foo 2026 25:61:61 +0000",
    b"Sun, 29 Nov 2026 10:00:00 -9959", b"", b"=?utf-7?q?+2AA-?=",
]
BROKEN_IDS = [
    b"<note shared@fuzz>", b"shared@fuzz", b"shared@fuzz (resent)", b"<>", b"<a@b> <c@d>",
    b"no at sign", b"<" + b"x" * 600 + b"@fuzz>", b"<caf\xc3\xa9@fuzz>", b"<a b c@fuzz",
    b"=?utf-7?q?+2AA-?=@fuzz", b"<\\ud800@fuzz>", b"",
]

# The ops of hostile and broken mail (not byte damage), see `hostile_ops`.
HOSTILE_OPS = ("encoded-word", "charset", "date", "message-id", "surrogate")
OPS = ("insert", "delete", "duplicate", "flip", "token", "sender", "tag", "truncate",
       *HOSTILE_OPS)


def encoded_word(arg: int) -> bytes:
    """An RFC 2047 encoded word in one of CHARSETS, chosen (with its text) by `arg`."""
    charset = CHARSETS[arg % len(CHARSETS)]
    choice = (arg // len(CHARSETS)) % 8
    if choice < len(SAMPLES):
        try:
            data = codecs.encode(SAMPLES[choice], charset)
        except Exception:  # noqa: BLE001 - not a text codec, or the text has no form in it
            data = SAMPLES[choice].encode("utf-8")
        if isinstance(data, str):  # rot13 and the like give text back
            data = data.encode("utf-8", "replace")
    elif choice == len(SAMPLES):
        data = random.Random(arg).randbytes(1 + arg % 12)
    else:
        data = SURROGATE_TOKENS[arg % len(SURROGATE_TOKENS)]
    if arg & 1:
        text = b"B?" + base64.b64encode(data)
    else:
        text = b"Q?" + b"".join(b"=%02X" % c for c in data)
    return b"=?" + charset.encode() + b"?" + text + b"?="


def mutate(base: bytes, ops: list[tuple[str, float, int]]) -> bytes:
    """Apply `ops` to `base`. Every op is total: any (where, arg) gives some message."""
    data = bytearray(base)
    for op, where, arg in ops:
        n = len(data)
        at = int(where * n) if n else 0
        if op == "insert":
            data[at:at] = bytes([arg % 256]) * (1 + arg % 7)
        elif op == "delete":
            del data[at:at + 1 + arg % 64]
        elif op == "duplicate":
            chunk = data[at:at + 1 + arg % 256]
            data[at:at] = chunk * (1 + arg % 4)
        elif op == "flip":
            if n:
                data[min(at, n - 1)] ^= 1 << (arg % 8)
        elif op == "token":
            data[at:at] = TOKENS[arg % len(TOKENS)]
        elif op == "sender":
            # An allowed sender in front, so the rules past `senders` see the message.
            data[0:0] = b"From: Alice <alice@example.com>\r\n"
        elif op == "tag":
            data[0:0] = b"Subject: " + TAGS[arg % len(TAGS)] + b"fuzz " + str(arg).encode() \
                + b"\r\n"
        elif op == "truncate":
            del data[max(at, 1):]
        elif op == "encoded-word":
            # In front (the first Subject/From wins) or anywhere: headers and body alike.
            word = encoded_word(arg)
            if arg % 3 == 0:
                data[0:0] = b"Subject: [DECLARE] " + word + b" fuzz\r\n"
            elif arg % 3 == 1:
                data[0:0] = b"From: " + word + b" <alice@example.com>\r\n"
            else:
                data[at:at] = word
        elif op == "charset":
            charset = CHARSETS[arg % len(CHARSETS)].encode()
            data[0:0] = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=" + charset
                         + b"\r\n")
        elif op == "date":
            data[0:0] = b"Date: " + FAR_DATES[arg % len(FAR_DATES)] + b"\r\n"
        elif op == "message-id":
            data[0:0] = b"Message-ID: " + BROKEN_IDS[arg % len(BROKEN_IDS)] + b"\r\n"
        elif op == "surrogate":
            token = SURROGATE_TOKENS[arg % len(SURROGATE_TOKENS)]
            if arg & 1:
                data[0:0] = b"Subject: [DECLARE] " + token + b" db down\r\n"
            else:
                data[at:at] = token
    return bytes(data)


def random_ops(rng: random.Random, max_ops: int = 8) -> list[tuple[str, float, int]]:
    return [(rng.choice(OPS), rng.random(), rng.randrange(1 << 16))
            for _ in range(rng.randint(1, max_ops))]


def hostile_ops(rng: random.Random) -> list[tuple[str, float, int]]:
    """One or two hostile ops and a little damage: for list traffic, so that what they
    do reaches the store and the templates."""
    ops = [(rng.choice(HOSTILE_OPS), rng.random(), rng.randrange(1 << 16))
           for _ in range(rng.randint(1, 2))]
    return ops + random_ops(rng, 2)[:rng.randint(0, 1)]
