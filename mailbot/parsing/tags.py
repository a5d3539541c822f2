"""Decoded subject line -> `SubjectTags`.

Takes the subject as `mime.py` hands it on (RFC 2047 decoded, one line, no control
characters) and hands on the tags PRODUCT.md defines, plus the title: the subject without
reply/forward prefixes and without the tags that were understood. Bracketed words that are
not tags (a list name such as `[Incidents]`, `[eu-west]`) stay in the title and are listed
in `unknown`.
"""

from __future__ import annotations

import re

from mailbot.models import SubjectTags
from mailbot.parsing.language import Language, parse_phase, parse_severity

MAX_SUBJECT = 2000  # longer subjects are cut before reading tags

_BRACKETED = re.compile(r"\[([^\[\]]{1,60})\]")
# Re:, RE:, Fwd:, FW:, AW:, SV:, Antw:, WG:, and their cousins, with Re[2]: / Re(2): counts.
_PREFIX = re.compile(
    r"\s*(?:re|fwd?|aw|sv|vs|antw|antwort|wg|tr|rv|rif|r|res|enc|odp|ynt|vl|ref|"
    r"отв|пересл|ha|sv|转发|回复)\s*(?:\[[0-9]{1,4}\]|\([0-9]{1,4}\))?\s*[:：]",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")


def incident_number(word: str, prefix: str) -> int | None:
    """n, when the bracketed `word` is an incident tag ("INC-42", "inc 42", "INC#42")."""
    m = re.fullmatch(
        re.escape(prefix) + r"[ \t_#:-]{0,3}([0-9]{1,9})", word.strip(), re.IGNORECASE
    )
    return int(m.group(1)) if m else None


def mentioned_incidents(text: str, prefix: str) -> set[int]:
    """The numbers of every incident tag in `text` (a title, say)."""
    return {n for word in _BRACKETED.findall(text)
            if (n := incident_number(word, prefix)) is not None}


def _incident_number(word: str, lang: Language) -> int | None:
    return incident_number(word, lang.prefix)


def strip_prefixes(subject: str) -> str:
    """`subject` without any number of leading Re:/Fwd:/AW:/SV: prefixes."""
    while True:
        m = _PREFIX.match(subject)
        if not m:
            return subject.strip()
        subject = subject[m.end():]


def read_tags(subject: str, lang: Language) -> SubjectTags:
    """The tags in `subject` and its title."""
    subject = subject[:MAX_SUBJECT]
    declare = postmortem = status = reviewed = done = False
    incident_id: int | None = None
    severity: str | None = None
    phase: str | None = None
    unknown: list[str] = []
    others: list[int] = []
    understood_tags: list[tuple[int, int, bool]] = []  # (start, end, an [INC-n] tag)
    for m in _BRACKETED.finditer(subject):
        word = m.group(1).strip()
        low = word.lower()
        understood = True
        number = _incident_number(word, lang)
        if low in ("declare", "incident", "declare incident", "new incident"):
            declare = True
        elif number is not None:
            if incident_id is None:
                incident_id = number
            elif number != incident_id and number not in others:
                others.append(number)
        elif low in ("postmortem", "post-mortem", "post mortem", "pm"):
            postmortem = True
        elif low == "status":
            status = True
        elif low in ("reviewed", "review done", "postmortem reviewed"):
            reviewed = True
        elif low in ("done", "action items done"):
            done = True
        elif parse_phase(word, lang) == low:
            phase = phase or low
        elif (sev := parse_severity(word, lang, need_letters=True)) and len(word) <= 12:
            severity = severity or sev
        else:
            understood = False
            unknown.append(word)
        if understood:
            understood_tags.append((m.start(), m.end(), number is not None))
    # The title is the subject without the tags it understood; except that in a
    # declaration, "[INC-1]" is part of what the new incident is about ("Fallout from
    # [INC-1]: queue backlog") and stays.
    kept: list[str] = []
    pos = 0
    for start, end, incident_tag in understood_tags:
        if declare and incident_tag:
            continue
        kept += [subject[pos:start], " "]
        pos = end
    kept.append(subject[pos:])
    title = strip_prefixes(_SPACES.sub(" ", "".join(kept)).strip())
    return SubjectTags(
        declare=declare,
        incident_id=incident_id,
        other_incidents=tuple(others),
        reply=_PREFIX.match(subject) is not None,
        severity=severity,
        phase=phase,
        postmortem=postmortem,
        status=status,
        reviewed=reviewed,
        done=done,
        title=title,
        unknown=tuple(unknown),
    )
