"""Shared helpers for the parsing tests: where the corpus is, and how to wrap a body as mail."""

from __future__ import annotations

import email
import email.message
from pathlib import Path

from mailbot.parsing import Language

from tests.support.corpus import ERP, talon_fixtures

# talon's fixtures from its pinned sdist (fetched once, then cached; see tests/support/corpus.py),
# email_reply_parser's bodies from tests/data/.
TALON = talon_fixtures()

LANG = Language(
    prefix="INC",
    severities=("SEV1", "SEV2", "SEV3", "SEV4"),
    phases=("investigating", "identified", "mitigating", "monitoring", "resolved"),
)


def wrap(body: bytes, content_type: str = "text/plain", *, subject: str = "Re: Test",
         extra: bytes = b"", cte: str = "8bit") -> bytes:
    """A minimal RFC 5322 message around `body`."""
    head = (
        b"From: Alice <alice@example.com>\n"
        b"To: incidents@example.com\n"
        b"Subject: " + subject.encode() + b"\n"
        b"Date: Mon, 2 Apr 2012 18:22:10 +0400\n"
        b"Message-ID: <test-" + str(abs(hash(body)) % 10**9).encode() + b"@example.com>\n"
        b"MIME-Version: 1.0\n" + extra +
        b"Content-Type: " + content_type.encode() + b"; charset=utf-8\n"
        b"Content-Transfer-Encoding: " + cte.encode() + b"\n\n"
    )
    return head + body


def squash(text: str) -> str:
    """`text` with all white space removed, for comparisons that ignore layout."""
    return "".join(text.split())


def standard_replies() -> list[Path]:
    return sorted((TALON / "standard_replies").glob("*.eml"))


def html_replies() -> list[Path]:
    return sorted((TALON / "html_replies").glob("*.html"))


def erp_files() -> list[Path]:
    return sorted(ERP.glob("*.txt"))


def text_parts(msg: email.message.Message) -> list[email.message.Message]:
    return [p for p in msg.walk() if p.get_content_type() in ("text/plain", "text/html")]


def set_text(part: email.message.Message, text: str) -> None:
    """Replace a part's text, re-encoded as UTF-8 (base64)."""
    del part["Content-Transfer-Encoding"]
    params = [(k, v) for k, v in part.get_params() or [] if k.lower() not in ("charset",)]
    part.set_payload(text, charset="utf-8")
    for key, value in params[1:]:
        if key.lower() in ("format", "delsp"):
            part.set_param(key, value)
