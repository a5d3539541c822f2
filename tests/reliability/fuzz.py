"""Message mutation for the fuzz tests: real mail from the corpus, damaged in the ways mail
gets damaged (and attacked), driven either by hypothesis or by a seeded random.Random.

A mutation is a tuple (op, where, arg): `where` in [0, 1) is a position relative to the
message length, so the same ops apply to any seed message and shrink well."""

from __future__ import annotations

import random

from tests.corpus import ERP, talon_fixtures  # real mail: see tests/corpus.py

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
    return out


TAGS = [b"[DECLARE] ", b"[INC-1] ", b"[SEV1]", b"[STATUS]", b"[POSTMORTEM] [INC-1] "]
TOKENS += TAGS

OPS = ("insert", "delete", "duplicate", "flip", "token", "sender", "tag", "truncate")


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
    return bytes(data)


def random_ops(rng: random.Random, max_ops: int = 8) -> list[tuple[str, float, int]]:
    return [(rng.choice(OPS), rng.random(), rng.randrange(1 << 16))
            for _ in range(rng.randint(1, max_ops))]
