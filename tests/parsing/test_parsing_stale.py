"""Every corpus message with current fields in its new text and stale ones in its quote:
only the current values apply; the stale ones are seen (for `mailbot check`) but ignored.

The variants are built from the corpus files: the new block goes right under the first
line of the message's new text, the stale block inside the quote (after the last `>`
line, or at the end of an unmarked Outlook-style quote, or in a quote we append when the
message has none).
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from mailbot.parsing import parse_mail
from tests.support.parsing_corpus import (
    LANG, TALON, erp_files, html_replies, set_text, standard_replies, wrap,
)

NEW = ["Severity: SEV1", "Phase: mitigating", "Commander: alice@example.com"]
STALE = ["Severity: SEV4", "Phase: investigating", "Commander: mallory@example.com"]
APPENDED_QUOTE = ["", "On Mon, Apr 2, 2012 at 6:26 PM, Old Thread <old@example.com> wrote:"]


def plant(text: str, first_new_line: str, has_quote: bool) -> str:
    """`text` with the NEW block under `first_new_line` and the STALE block in the quote."""
    crlf = "\r\n" in text
    lines = text.replace("\r\n", "\n").split("\n")
    anchor = next(i for i, line in enumerate(lines) if line.strip() == first_new_line.strip())
    quoted = [i for i, line in enumerate(lines) if line.lstrip().startswith(">")]
    inserts: list[tuple[int, list[str]]] = [(anchor + 1, ["", *NEW, ""])]
    if quoted:
        inserts.append((quoted[-1] + 1, ["> " + s for s in STALE]))
    elif has_quote:  # an unmarked quote (Outlook header block, "Original Message")
        inserts.append((len(lines), STALE))
    else:
        inserts.append((len(lines), APPENDED_QUOTE + ["> " + s for s in STALE]))
    for at, block in sorted(inserts, reverse=True):
        # In format=flowed mail a trailing space joins a line to the next one: end the
        # line before the planted block with a hard break.
        lines[at - 1] = lines[at - 1].rstrip(" ") if at else lines[at - 1]
        lines[at:at] = block
    out = "\n".join(lines)
    return out.replace("\n", "\r\n") if crlf else out


def assert_only_new_values(raw: bytes) -> None:
    parsed = parse_mail(raw, LANG)
    f = parsed.fields
    assert (f.severity, f.phase, f.commander) == ("SEV1", "mitigating", "alice@example.com")
    assert f.invalid == ()
    stale = [line for line in f.lines if line.value in ("SEV4", "mallory@example.com")]
    assert len(stale) == 2 and all(line.where != "new" for line in stale)
    assert "SEV4" not in parsed.new_text and "mallory" not in parsed.narrative
    assert "Severity" not in parsed.narrative


def eml_variant(path: Path) -> bytes:
    original = parse_mail(path.read_bytes(), LANG)
    msg = email.message_from_bytes(path.read_bytes())
    plain = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    text = plain.get_payload(decode=True).decode(plain.get_content_charset() or "utf-8")
    first = original.new_text.split("\n")[0]
    set_text(plain, plant(text, first, bool(original.quoted_text)))
    return msg.as_bytes(policy=email.policy.compat32)


@pytest.mark.parametrize(
    "path", standard_replies() + [TALON / "reply-quotations-share-block.eml"],
    ids=lambda p: p.stem,
)
def test_eml_new_fields_win(path: Path):
    assert_only_new_values(eml_variant(path))


@pytest.mark.parametrize("path", erp_files(), ids=lambda p: p.stem)
def test_erp_new_fields_win(path: Path):
    body = path.read_bytes().decode("utf-8")
    original = parse_mail(wrap(path.read_bytes()), LANG)
    first = original.new_text.split("\n")[0]
    assert_only_new_values(wrap(plant(body, first, bool(original.quoted_text)).encode()))


@pytest.mark.parametrize("path", html_replies(), ids=lambda p: p.stem)
def test_html_new_fields_win(path: Path):
    html = path.read_text(encoding="utf-8")
    assert html.count("Hi. I am fine.") == 1 and "Hello! How are you?" in html
    html = html.replace(
        "Hi. I am fine.",
        "Hi. I am fine.<br>- <b>Severity:</b> SEV1<br>*Phase:* mitigating<br>"
        "<b>Commander:</b> <a href=\"mailto:alice@example.com\">alice@example.com</a><br>",
    ).replace(
        "Hello! How are you?",
        "Hello! How are you?<br>Severity: SEV4<br>Phase: investigating<br>"
        "Commander: mallory@example.com<br>", 1,
    )
    assert_only_new_values(wrap(html.encode("utf-8"), "text/html"))
