"""Parsing: raw message bytes -> `ParsedMail`, the one object the rules read.

The stages, in order (each module's docstring says what it takes and hands on):

1. `mime.py`      bytes -> headers, addresses, date, key, body text, attachments, defects
                  (`htmltext.py` turns HTML-only bodies into `>`-quoted text)
2. `tags.py`      decoded subject -> `SubjectTags` (declare, INC-n, severity, phase, …)
3. `quotes.py`    body text -> every line labelled new / quoted / signature
4. `fields.py`    labelled lines -> `Fields`, read from the new lines only

`parse_mail` never raises: whatever the bytes, it returns a `ParsedMail`, with what went
wrong listed in `defects`, and no lone surrogate in any of its text (`surrogates.py`).
The language (prefix, severities, phases, roles) comes from
the configuration through `Language.from_config`.
"""

from __future__ import annotations

import hashlib
import logging

from mailbot.models import Fields, ParsedMail, SubjectTags
from mailbot.parsing.fields import read_fields
from mailbot.parsing.language import Language, parse_phase, parse_severity
from mailbot.parsing.mime import MAX_TEXT, MAX_TEXT_LINES, MimeMail, read_mime
from mailbot.parsing.quotes import split_reply
from mailbot.parsing.surrogates import without_surrogates
from mailbot.parsing.tags import read_tags

__all__ = ["Language", "parse_mail", "parse_severity", "parse_phase"]

log = logging.getLogger(__name__)


def parse_mail(raw: bytes, lang: Language) -> ParsedMail:
    """Read one message; never raises."""
    try:
        return without_surrogates(_parse(bytes(raw), lang))
    except Exception as exc:  # the last line of defence: a bug must not lose the message
        try:
            data = bytes(raw or b"")
        except Exception:
            data = repr(raw).encode("utf-8", "replace")
        key = "sha256:" + hashlib.sha256(data).hexdigest()
        log.exception("parsing failed for %s", key)
        return ParsedMail(
            key=key, message_id="", from_address="", from_name="", envelope_sender=None,
            to=(), cc=(), subject="", date=None, in_reply_to=(), references=(), headers=(),
            content_type="", tags=SubjectTags(), fields=Fields(), new_text="", narrative="",
            defects=(without_surrogates(f"parser error: {type(exc).__name__}: {str(exc)[:200]}"),),
            size=len(data),
        )


def _analysed_part(body: str, defects: list[str]) -> str:
    """The start of the body text that quote stripping and field reading see: every line
    becomes an object there, so both characters and lines are capped."""
    if len(body) > MAX_TEXT:
        defects.append(f"body text longer than {MAX_TEXT} characters; only the start was read")
        body = body[:MAX_TEXT]
    if body.count("\n") >= MAX_TEXT_LINES:
        cut = -1
        for _ in range(MAX_TEXT_LINES):
            cut = body.index("\n", cut + 1)
        defects.append(f"body text longer than {MAX_TEXT_LINES} lines; only the start was read")
        body = body[:cut]
    return body


def _parse(raw: bytes, lang: Language) -> ParsedMail:
    mime: MimeMail = read_mime(raw)
    defects = list(mime.defects)
    body = _analysed_part(mime.body, defects)

    split = split_reply(body)
    sender = (f"{mime.from_name} <{mime.from_address}>" if mime.from_name and mime.from_address
              else mime.from_address)
    fields, consumed = read_fields(split.lines, lang, sender, sent=mime.date)
    narrative = split.render_new(lambda i: i not in consumed)

    return ParsedMail(
        key=mime.key,
        message_id=mime.message_id,
        from_address=mime.from_address,
        from_name=mime.from_name,
        envelope_sender=mime.envelope_sender,
        to=mime.to,
        cc=mime.cc,
        subject=mime.subject,
        date=mime.date,
        in_reply_to=mime.in_reply_to,
        references=mime.references,
        headers=tuple(mime.headers),
        content_type=mime.content_type,
        tags=read_tags(mime.subject, lang),
        fields=fields,
        new_text=split.new_text,
        narrative=narrative,
        quoted_text=split.quoted_text,
        signature=split.signature,
        attachments=tuple(mime.attachments),
        defects=tuple(dict.fromkeys(defects)),
        size=len(raw),
        report=mime.report,
        raw_headers=tuple(mime.raw_headers),
    )
