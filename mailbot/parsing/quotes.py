"""Reply text -> new text, quoted text and signature, line by line.

Takes the plain text of a message (HTML already turned into `>`-quoted text by
`htmltext.py`) and hands on a `Split`: every line labelled "new", "quoted" or "signature",
with the quote markers removed, so `fields.py` can read each line and say where it was.

How a line becomes quoted (one pass each, in this order):

1. It starts with `>` (any depth, any leading blanks).
2. It is part of an attribution ("On <date>, <who> wrote:", over up to four lines, in
   several languages, or "<date>, <who> <addr>:" directly above `>` lines). When the
   attribution is not followed by `>` lines (a forwarded-style reply), everything from it
   to the end is the quote.
3. It is, or follows, a reply separator: "-----Original Message-----", "Begin forwarded
   message:", or an Outlook header block (From: plus Sent:/Date:/To:/Subject:, in
   several languages, `*From:*` decoration allowed), together with the rules and blank
   lines just above it.

Everything else is the writer's own text, and every unquoted fragment is kept, so inline
and bottom-posted replies work. Within each fragment a signature starts at a `-- ` line
(or `--`), a line of underscores (mailing-list footers), or a trailing "Sent from my …" /
"Sent with …" / "Get Outlook for …" line.

Every pattern is anchored, bounded and applied to one line (or a window of at most four
short lines), so no input can make them backtrack for long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

NEW, QUOTED, SIGNATURE = "new", "quoted", "signature"

_MAX_HEADER = 500  # an attribution longer than this is prose, not a header

_WROTE = re.compile(
    r"(?:wrote|writes|has written|schrieb|schreibt|a\s+écrit|a\s+ecrit|escribió|escribio|"
    r"ha\s+scritto|scrisse|schreef|geschreven|skrev|skrev\s+følgende|kirjoitti|napisał|napisal|"
    r"napísal|napsal|написал|написала|написал\(а\)|пишет|escreveu|yazdı|írta|έγραψε|"
    r"כתב|كتب|写道|寫道|wrote\s+on\s+[^:]{0,80})\s*:\s*$",
    re.IGNORECASE,
)
# How an attribution begins: "On …", "Am …", "Le …", a date, a weekday, "--- On …".
_STARTER = re.compile(
    r"[-–—\s*_]{0,6}(?:(?:on|am|le|el|il|op|den|em|w\s+dniu|dnia|el\s+día|"
    r"mon|tue|wed|thu|fri|sat|sun|пн|вт|ср|чт|пт|сб|вс)\b|[0-9])", re.IGNORECASE,
)
_TIME = re.compile(r"[0-9]{1,2}\s?:\s?[0-9]{2}")
_SEPARATOR = re.compile(
    r"\s*[-=_*]{2,}\s*(?:original\s+message|forwarded\s+message|ursprüngliche\s+nachricht|"
    r"weitergeleitete\s+nachricht|message\s+d'origine|message\s+transféré|mensaje\s+original|"
    r"messaggio\s+originale|исходное\s+сообщение|пересылаемое\s+сообщение|"
    r"oorspronkelijk\s+bericht|originalmeddelande|alkuperäinen\s+viesti)\s*[-=_*]{2,}\s*$",
    re.IGNORECASE,
)
_FORWARDED = re.compile(r"\s*(?:begin\s+forwarded\s+message|anfang\s+der\s+weitergeleiteten"
                        r"\s+e-mail|début\s+du\s+message\s+réexpédié)\s*:\s*$", re.IGNORECASE)
_RULE = re.compile(r"\s*[-_=*~]{5,}\s*$")
_HEADER_KEY = re.compile(r"[\s*_]{0,4}([^\W\d_]{1,12}(?: [^\W\d_]{1,8})?)[\s*_]{0,4}:", re.UNICODE)
_FROM_KEYS = {"from", "von", "de", "от", "van", "da", "fra", "från", "od", "lähettäjä", "mittente"}
_OTHER_KEYS = {
    "sent", "date", "to", "subject", "cc", "datum", "gesendet", "an", "betreff", "envoyé",
    "à", "objet", "enviado", "enviada", "para", "asunto", "отправлено", "дата", "кому", "тема",
    "копия", "verzonden", "aan", "onderwerp", "skickat", "till", "ämne", "inviato", "a",
    "oggetto", "wysłano", "do", "temat", "reply to", "reply-to", "sent by",
}
_MOBILE = re.compile(
    r"\s*(?:sent|envoyé|gesendet|enviado|inviato|verzonden|skickat|отправлено)"
    r"(?:\s+(?:wirelessly|automatically))?\s+(?:from|with|via|using|von|mit|de|desde|"
    r"da|con|met|från|с|из)\s+\S.{0,70}$|\s*get\s+outlook\s+for\s+\S.{0,30}$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Line:
    """One line of the body without its quote markers, and where it stands."""

    text: str
    where: str  # new | quoted | signature


@dataclass(frozen=True)
class Split:
    """A body cut into new text, quoted text and signature."""

    lines: tuple[Line, ...]
    raw: tuple[str, ...]  # the original lines, quote markers included

    @property
    def new_text(self) -> str:
        return self.render_new()

    @property
    def quoted_text(self) -> str:
        return _tidy([r for r, line in zip(self.raw, self.lines, strict=True)
                      if line.where == QUOTED])

    @property
    def signature(self) -> str:
        return _tidy([line.text for line in self.lines if line.where == SIGNATURE])

    def render_new(self, keep: Callable[[int], bool] = lambda i: True) -> str:
        """The new lines for which `keep(index)` holds; fragments apart by one blank line."""
        out: list[str] = []
        gap = False
        for i, line in enumerate(self.lines):
            if line.where != NEW:
                gap = True
                continue
            if not keep(i):
                continue
            if gap and out:
                out.append("")
            gap = False
            out.append(line.text)
        return _tidy(out)


def _tidy(lines: list[str]) -> str:
    """Lines joined, trailing blanks cut, runs of empty lines made one."""
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return "\n".join(out).strip("\n")


def strip_quote_marks(line: str) -> str:
    """`line` without its leading `>` markers (and the space after them)."""
    i, n = 0, len(line)
    last = -1
    while i < n:
        c = line[i]
        if c == ">":
            last = i
        elif c not in " \t":
            break
        i += 1
    if last < 0:
        return line
    rest = line[last + 1:]
    return rest[1:] if rest.startswith(" ") else rest


def _is_quoted(line: str) -> bool:
    return line.lstrip(" \t")[:1] == ">"


def _blank(line: str) -> bool:
    return not line.strip()


def _attribution(window: str, first: str) -> str | None:
    """'strong' for "On <date>, … wrote:", 'strong-nostart' for "<addr> wrote:", 'bare' for
    any other "… wrote:", 'weak' for "<date> <who> <addr>:", else None."""
    if len(window) > _MAX_HEADER or not window.endswith(":"):
        return None
    has_detail = "@" in window or any(c.isdigit() for c in window)
    if _WROTE.search(window[-120:]):
        if has_detail and _STARTER.match(first):
            return "strong"
        # "Bob <bob@example.com> wrote:" -- without a date, only an address will do.
        if "@" in window:
            return "strong-nostart"
        # "On Wed, Alice wrote:" -- no date or address: only right above quoted lines.
        return "bare"
    if _STARTER.match(first) and "@" in window and _TIME.search(window):
        return "weak"
    return None


def _header_keys(line: str) -> str | None:
    if ":" not in line[:40]:
        return None
    m = _HEADER_KEY.match(line[:60])
    return m.group(1).lower() if m else None


def _outlook_block_at(lines: list[str], i: int) -> bool:
    """Does an Outlook-style "From: / Sent: / To: / Subject:" block start at line i?"""
    first = _header_keys(lines[i])
    if first is None or (first not in _FROM_KEYS and first not in _OTHER_KEYS):
        return False
    keys = {first}
    j, misses = i + 1, 0
    while j < len(lines) and j < i + 10 and not _blank(lines[j]) and not _is_quoted(lines[j]):
        key = _header_keys(lines[j])
        if key in _FROM_KEYS or key in _OTHER_KEYS:
            keys.add(key)
        else:
            misses += 1  # a wrapped header value
            if misses > 2:
                break
        j += 1
    return bool(keys & _FROM_KEYS) and len(keys) >= 2


def split_reply(text: str) -> Split:
    """Label every line of `text` as new, quoted or signature."""
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    n = len(raw)
    quoted = [_is_quoted(line) for line in raw]
    rest_from = n  # index from which everything is quoted

    # 2. attributions, possibly wrapped over several lines
    for i in range(n):
        if rest_from <= i:
            break
        line = raw[i].rstrip()
        if quoted[i] or not line.endswith(":") or len(line) > _MAX_HEADER:
            continue
        found: tuple[int, str] | None = None
        fallback: tuple[int, str] | None = None
        for k in range(0, 4):
            start = i - k
            if start < 0 or _blank(raw[start]) or quoted[start]:
                break
            if k and raw[start].rstrip()[-1:] in ".:;!?":
                break  # a wrapped attribution has no sentence ends inside it
            window = " ".join(raw[j].strip() for j in range(start, i + 1))
            kind = _attribution(window, raw[start].strip())
            if kind in ("strong", "weak"):
                found = (start, kind)
                break
            if kind == "strong-nostart" and fallback is None:
                fallback = (start, "strong")
            if kind == "bare" and fallback is None:
                fallback = (start, "bare")
        found = found or fallback
        if not found:
            continue
        start, kind = found
        nxt = i + 1
        while nxt < n and _blank(raw[nxt]):
            nxt += 1
        followed_by_quote = nxt < n and quoted[nxt]
        if kind in ("weak", "bare") and not followed_by_quote:
            continue
        for j in range(start, i + 1):
            quoted[j] = True
        if not followed_by_quote and nxt < n:
            rest_from = min(rest_from, start)

    # 3. separators and Outlook header blocks
    for i in range(min(n, rest_from)):
        if quoted[i]:
            continue
        line = raw[i]
        if _SEPARATOR.match(line) or _FORWARDED.match(line) or _outlook_block_at(raw, i):
            start = i
            while start > 0 and not quoted[start - 1] and (
                _blank(raw[start - 1]) or _RULE.match(raw[start - 1])
            ):
                start -= 1
            rest_from = min(rest_from, start)
            break

    where = [QUOTED if (quoted[i] or i >= rest_from) else NEW for i in range(n)]

    # 4. signatures, per unquoted fragment
    i = 0
    while i < n:
        if where[i] != NEW:
            i += 1
            continue
        end = i
        while end < n and where[end] == NEW:
            end += 1
        _mark_signature(raw, where, i, end)
        i = end

    lines = tuple(
        Line(strip_quote_marks(raw[i]) if quoted[i] else raw[i], where[i]) for i in range(n)
    )
    return Split(lines=lines, raw=tuple(raw))


def _mark_signature(raw: list[str], where: list[str], start: int, end: int) -> None:
    sig_from = end
    for i in range(start, end):
        stripped = raw[i].strip()
        if raw[i].rstrip() in ("--", "-- ") or stripped == "--" or (
            len(stripped) >= 2 and stripped.strip("_") == "" and raw[i].startswith("_")
        ):
            sig_from = i
            break
    # A trailing mobile-client line ("Sent from my iPhone") with only blanks after it.
    last = sig_from - 1
    while last >= start and _blank(raw[last]):
        last -= 1
    if last >= start:
        candidate = raw[last].strip()
        if (len(candidate) <= 90 and _MOBILE.match(candidate)
                and "," not in candidate and not candidate.endswith(".")):
            sig_from = last
    for i in range(sig_from, end):
        where[i] = SIGNATURE
