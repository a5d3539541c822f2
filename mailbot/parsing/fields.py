"""Labelled body lines -> incident `Fields`.

Takes the `Line`s from `quotes.py` (each marked new / quoted / signature) and hands on a
`Fields` read from the new lines only, plus the indexes of the lines it consumed so the
caller can build the narrative. Field lines found in quoted text or a signature are
recorded in `Fields.lines` (so `mailbot check` can show what was ignored) but never applied.

A field line is `Key: value`. Keys are case-insensitive, spaces/underscores/hyphens are
equivalent (`Incident Commander`, `incident_commander`), and the decoration people type is
ignored: list bullets (`-`, `*`, `•`, `1.`), emphasis around the key or the value
(`*Phase:* x`, `**Phase**: x`, `__Sev__: 1`), a space before the colon, a full-width colon,
or a spaced dash instead of the colon (`Severity - SEV1`). HTML bold is gone by the time
the text gets here.

`Started-At:` and `Resolved-At:` are read as instants (see `parse_when`): a time of day
is the most recent such time at the message's own Date:, in the configured zone unless
the value names one.

`Summary:` and `Impact:` continue over the following lines until a blank line or the next
field line, because plain-text clients hard-wrap long lines at ~72 columns. `Roles:` and
`Services:` continue onto the next line when the value ends with a comma.

A stated field is applied by its last statement. A last statement whose value is not
acceptable leaves the field None and is listed in `Fields.invalid` with the valid choices.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from typing import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.models import FIELD_KEYS, FieldLine, Fields, InvalidField
from mailbot.parsing.language import Language, parse_phase, parse_severity
from mailbot.parsing.quotes import NEW, Line

MAX_FIELD_LINE = 4000  # a longer line is prose (or an attack), not a field
_MAX_CONTINUATION = 30

# Each field and its keys are defined once, in `models.Fields`.
_KEY_TO_FIELD = {key: name for name, keys in FIELD_KEYS.items() for key in keys}
_CONTINUED = {"summary", "impact"}
_LISTS = {"roles", "services", "page"}
_PEOPLE = {"commander", "postmortem_owner"}
_TIMES = {"started_at", "resolved_at"}

_KEY_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9 _-]{0,39}")
_LEAD = re.compile(r"[ \t*•+·–—◦▪-]{0,12}(?:[0-9]{1,2}[.)][ \t]+)?[ \t*•+·◦▪-]{0,4}")
_EMPHASIS = " \t*_`"
# HTML emphasis typed into a plain-text mail ("<b>Commander:</b> alice@example.com"):
# around the key, and closing tags left at the start of the value.
_INLINE_TAG = re.compile(r"</?(?:b|strong|i|em|u)>", re.IGNORECASE)
_LEADING_TAGS = re.compile(r"(?:[ \t]*</?(?:b|strong|i|em|u)>)+", re.IGNORECASE)
_PLACEHOLDERS = {"", "?", "??", "-", "--", "tbd", "tba", "tbc", "n/a", "na", "n.a", "none",
                 "nobody", "unknown", "...", "…", "unchanged", "no change", "(no change)",
                 "(unchanged)", "same", "same as before", "as before", "no changes"}
# "SEV2 -> SEV1", written the way acknowledgements show a change: the new value counts.
_ARROW = re.compile(r"\s*(?:->|→|=>|⇒|-->)\s*")
# A value that guesses rather than states ("Phase: Resolved?", "Commander: still Bob") is
# not understood: taken as written, it would resolve an incident or name "still Bob".
_HEDGEABLE = {"severity", "phase", "commander", "postmortem_owner", "customer_impact"}
_HEDGES = {"still", "maybe", "probably", "perhaps", "possibly", "likely", "prob", "guess",
           "think", "unsure", "hopefully", "tentatively", "almost", "nearly", "kinda"}
_SELF = {"me", "myself", "i", "me.", "i am", "i'm"}
_YES = {"yes", "y", "true", "1", "on", "ja", "oui", "si", "sí"}
_NO = {"no", "n", "false", "0", "off", "none", "nein", "non"}
_MAILTO = re.compile(r"<mailto:([^<>\s]{1,320})>|\[mailto:([^\[\]\s]{1,320})\]", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_ROLE_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


def normalise_key(key: str) -> str:
    """`Incident Commander`, `incident_commander` -> `incident-commander`."""
    key = key.strip(_EMPHASIS).lower()
    key = re.sub(r"[ _-]+", "-", key)
    return key


def split_field_line(line: str, lang: Language) -> tuple[str, str, str] | None:
    """(key as written, canonical field or 'role:<name>', raw value) if `line` is a field line."""
    if len(line) > MAX_FIELD_LINE:
        return None
    text = line.strip()
    lead = _LEAD.match(text)
    assert lead is not None  # every part of _LEAD is optional: it matches at least ""
    text = text[lead.end():]  # list bullets and numbering
    head = text[:60]
    colon = -1
    for sep in (":", "："):
        pos = head.find(sep)
        if pos > 0 and (colon < 0 or pos < colon):
            colon = pos
    dash_key = None
    if colon < 0:
        for dash in (" - ", " – ", " — "):
            pos = head.find(dash)
            if pos > 0:
                dash_key = (pos, len(dash))
                break
        if dash_key is None:
            return None
        key_raw, value = text[:dash_key[0]], text[dash_key[0] + dash_key[1]:]
    else:
        key_raw, value = text[:colon], text[colon + 1:]
    if "<" in key_raw:
        key_raw = _INLINE_TAG.sub("", key_raw)
    if value.lstrip().startswith("<"):
        value = _LEADING_TAGS.sub("", value, count=1)
    key_written = key_raw.strip(_EMPHASIS)
    if not _KEY_TEXT.fullmatch(key_written):
        return None
    key = normalise_key(key_written)
    field = _KEY_TO_FIELD.get(key)
    if field is None and key in lang.roles:
        field = "role:" + key
    if field is None:
        return None
    value = value.strip(_EMPHASIS)
    return key_written, field, value


def _person(value: str, sender: str) -> str | None:
    value = _SPACES.sub(" ", value).strip(_EMPHASIS + ".;,")

    def unmailto(m: re.Match[str]) -> str:
        addr = m.group(1) or m.group(2)
        rest = value[:m.start()] + value[m.end():]
        return "" if addr.lower() in rest.lower() else f"<{addr}>"

    value = _MAILTO.sub(unmailto, value).strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    if value.startswith("@") and value.endswith(">") and "<" in value:
        value = value[1:]  # an @-mention with its address: "@Grace Liu <grace@x>"
    value = _SPACES.sub(" ", value).strip()
    low = value.lower()
    if low in _PLACEHOLDERS or (low.startswith("<") and low.endswith(">") and "@" not in low):
        return None
    if low in _SELF:
        return sender or value
    return value


def _items(value: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,;]", value) if item.strip()]


def _roles(value: str, sender: str, role: str | None = None
           ) -> tuple[list[tuple[str, str]], list[str]]:
    """Pairs read from a Roles value (or a per-role shorthand), and the items not understood."""
    pairs: list[tuple[str, str]] = []
    bad: list[str] = []
    for item in _items(value):
        name = role
        person_text = item
        if name is None:
            for sep in ("=", ":"):
                if sep in item:
                    left, person_text = item.split(sep, 1)
                    name = normalise_key(left)
                    break
            else:
                name = "member"
        if not _ROLE_NAME.fullmatch(name or ""):
            bad.append(item)
            continue
        person = _person(person_text, sender)
        if person is None:
            continue
        pairs.append((name, person))
    return pairs, bad


def _number(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Give repeated roles distinct keys: expert, expert-2, expert-3."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for name, person in pairs:
        seen[name] = seen.get(name, 0) + 1
        out[name if seen[name] == 1 else f"{name}-{seen[name]}"] = person
    return out


# "09:50", "9.50", "yesterday 23:10", "2026-11-30 16:00 CET", "2026-11-30T16:00:00+01:00"
_WHEN = re.compile(
    r"(?:(?P<word>today|yesterday)[ ,]+|(?P<date>\d{4}-\d{1,2}-\d{1,2})(?:[ ,]+|T))?"
    r"(?P<h>\d{1,2})[:.h](?P<m>\d{2})(?::(?P<s>\d{2})(?:\.\d+)?)?"
    r"\s*(?P<zone>[A-Za-z][A-Za-z_/+-]{0,40}|[+-]\d{2}:?\d{2}|(?:UTC|GMT)[+-]\d{1,2}(?::?\d{2})?)?",
    re.IGNORECASE)
_OFFSET = re.compile(r"(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?", re.IGNORECASE)
# Abbreviations people write that mean one offset wherever they are written (CST, IST
# and the like mean several and are not guessed); the configured zone's own come first.
_ABBREVIATIONS = {"utc": 0, "gmt": 0, "z": 0, "wet": 0, "west": 60, "bst": 60, "cet": 60,
                  "cest": 120, "eet": 120, "eest": 180, "msk": 180, "est": -300,
                  "edt": -240, "pst": -480, "pdt": -420, "mst": -420, "mdt": -360,
                  "jst": 540, "aest": 600, "aedt": 660}
# A stated time this far after the message's Date: is still taken as today's: clocks
# and people round.
_AHEAD = dt.timedelta(minutes=15)


def _zone(name: str | None, home: dt.tzinfo, near: dt.datetime) -> dt.tzinfo | None:
    if not name:
        return home
    m = _OFFSET.fullmatch(name)
    if m and (name[0] in "+-" or len(name) > 3):
        minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
        return dt.timezone((-1 if m.group(1) == "-" else 1) * dt.timedelta(minutes=minutes))
    low = name.lower()
    for probe in (near, near - dt.timedelta(days=182)):
        local = probe.astimezone(home)
        if (local.tzname() or "").lower() == low:
            return dt.timezone(local.utcoffset() or dt.timedelta(0))
    if low in _ABBREVIATIONS:
        return dt.timezone(dt.timedelta(minutes=_ABBREVIATIONS[low]))
    if "/" in name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return None


def parse_when(value: str, sent: dt.datetime | None, tz: str = "UTC") -> dt.datetime | None:
    """The instant a `Started-At:` / `Resolved-At:` value names, aware UTC, or None.

    A date and time is taken in the zone it names, else in `tz`. A time of day alone is
    the most recent such time at `sent` (the message's Date:), "yesterday 23:10" the day
    before. Nothing later than `sent` (give or take `_AHEAD`) is accepted: it has not
    happened yet."""
    text = value.strip(_EMPHASIS + ".,;")
    m = _WHEN.fullmatch(text)
    if m is None:
        return None
    home = ZoneInfo(tz)
    # Only to learn the home zone's own abbreviations (winter and summer): any day will do.
    near = sent or dt.datetime(2026, 1, 15, tzinfo=dt.timezone.utc)
    zone = _zone(m.group("zone"), home, near)
    if zone is None:
        return None
    try:
        clock = dt.time(int(m.group("h")), int(m.group("m")), int(m.group("s") or 0))
        if m.group("date"):
            day = dt.date(*(int(x) for x in m.group("date").split("-")))
            when = dt.datetime.combine(day, clock, tzinfo=zone)
        else:
            if sent is None:
                return None  # a time of day needs the day the message was written
            day = sent.astimezone(zone).date()
            when = dt.datetime.combine(day, clock, tzinfo=zone)
            word = (m.group("word") or "").lower()
            if word == "yesterday":
                when = dt.datetime.combine(day - dt.timedelta(days=1), clock, tzinfo=zone)
            elif when > sent + _AHEAD and word != "today":
                when = dt.datetime.combine(day - dt.timedelta(days=1), clock, tzinfo=zone)
        when = when.astimezone(dt.timezone.utc)
        if sent is not None and when > sent + _AHEAD:
            return None
    except (ValueError, OverflowError):
        # Also a hostile Date: (31 Dec 9999 -2359) that a time of day is relative to: the
        # value is not understood, and the sender is told, rather than the message lost.
        return None
    return when


def _when_examples(sent: dt.datetime | None, tz: str) -> tuple[str, ...]:
    """What a time field accepts, shown with the message's own date."""
    try:
        day = sent.astimezone(ZoneInfo(tz)) if sent is not None else None
    except (ValueError, OverflowError):
        day = None
    if day is None:
        return ("09:50", "yesterday 23:10")
    return ("09:50", "yesterday 23:10", f"{day.date().isoformat()} 08:00 {day.tzname()}")


def read_fields(lines: Sequence[Line], lang: Language, sender: str = "", *,
                sent: dt.datetime | None = None) -> tuple[Fields, set[int]]:
    """Fields stated in the new lines; and the indexes of every line read as a field.
    `sent` is the message's Date:, which a time of day in `Started-At:` is relative to."""
    read: list[tuple[FieldLine, str]] = []  # (line, internal field name)
    consumed: set[int] = set()
    misspelled: list[tuple[str, str]] = []
    meant_lines: list[Line] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        found = split_field_line(line.text, lang) if line.text.strip() else None
        if found is None:
            if line.where == NEW and ":" in line.text[:40]:
                guess = _misspelled_key(line.text, lang)
                if guess and guess not in misspelled:
                    misspelled.append(guess)
                    value_text = line.text.split(":", 1)[1] if ":" in line.text else ""
                    meant_lines.append(Line(text=f"{guess[1]}: {value_text.strip()}",
                                            where=NEW))
            i += 1
            continue
        key, field, value = found
        consumed.add(i)
        j = i + 1
        canonical = "roles" if field.startswith("role:") else field
        if canonical in _CONTINUED or canonical in _LISTS:
            while j < n and j - i <= _MAX_CONTINUATION and lines[j].where == line.where:
                nxt = lines[j].text
                if not nxt.strip() or split_field_line(nxt, lang) is not None:
                    break
                if canonical in _LISTS and not value.rstrip().endswith(","):
                    break
                if len(value) + len(nxt) > MAX_FIELD_LINE:
                    break
                value = f"{value.rstrip()} {nxt.strip()}"
                consumed.add(j)
                j += 1
        value = _SPACES.sub(" ", value).strip()
        read.append((FieldLine(key=key, field=canonical, value=value, where=line.where), field))
        i = j

    state: dict[str, object] = {}
    invalid: dict[str, InvalidField] = {}
    blanked: dict[str, str] = {}
    role_pairs: list[tuple[str, str]] = []
    role_invalid: list[InvalidField] = []
    for fl, field in read:
        if fl.where != NEW:
            continue
        value = fl.value
        if field.startswith("role:") or field == "roles":
            pairs, bad = _roles(value, sender, field[5:] if field.startswith("role:") else None)
            restated = {name for name, _ in pairs}  # a later statement of a role replaces it
            role_pairs = [p for p in role_pairs if p[0] not in restated]
            role_pairs.extend(pairs)
            role_invalid.extend(InvalidField("roles", b) for b in bad)
            continue
        if not value.strip(_EMPHASIS):
            continue  # an empty key from a pasted template: not stated
        if field in ("severity", "phase", "commander", "customer_impact", "channel") and \
                _ARROW.search(value):
            value = _ARROW.split(value)[-1]
        blank = value.strip(_EMPHASIS + ".").lower()
        if blank.strip("?") == "" and blank:
            blank = "?"  # "???"
        if blank in _PLACEHOLDERS and not (field == "customer_impact" and blank in _NO):
            # "?", "TBD", "n/a": a blank someone left, not a value to store
            if field not in state and field not in invalid:
                blanked[field] = value
            continue
        blanked.pop(field, None)
        if field in _HEDGEABLE and _is_hedged(value):
            choices = {"severity": lang.severities, "phase": lang.phases,
                       "customer_impact": ("yes", "no")}.get(field, ())
            invalid[field] = InvalidField(field, value, tuple(choices), hedged=True)
            state.pop(field, None)
            continue
        result: object
        if field == "severity":
            result = parse_severity(value, lang)
            choices = lang.severities
        elif field == "phase":
            result = parse_phase(value, lang)
            choices = lang.phases
        elif field == "customer_impact":
            word = re.split(r"[\s,.;:!()-]", value.strip(_EMPHASIS).lower(), maxsplit=1)[0]
            result = True if word in _YES else False if word in _NO else None
            choices = ("yes", "no")
        elif field in ("services", "page"):
            names: list[str] = []
            for item in _items(value):
                if item.strip(_EMPHASIS + ".").lower() in _PLACEHOLDERS:
                    continue
                if item.lower() not in (x.lower() for x in names):
                    names.append(item)
            result = tuple(names) if names else None
            if result is None:
                continue
            choices = ()
        elif field in _TIMES:
            result = parse_when(value, sent, lang.timezone)
            choices = _when_examples(sent, lang.timezone)
        elif field in _PEOPLE:
            result = _person(value, sender)
            if result is None:
                continue
            choices = ()
        else:
            result = value
            choices = ()
        if result is None:
            invalid[field] = InvalidField(field, value, tuple(choices))
            state.pop(field, None)
        else:
            state[field] = result
            invalid.pop(field, None)

    roles = _number(role_pairs)
    stated = {name: state.get(name) for name in FIELD_KEYS if name != "roles"}
    return Fields(
        **stated,  # type: ignore[arg-type]
        roles=roles,
        invalid=tuple(invalid.values()) + tuple(role_invalid),
        blanked=tuple(blanked.items()),
        lines=tuple(fl for fl, _ in read),
        misspelled=tuple(misspelled),
        as_meant=read_fields(meant_lines, lang, sender, sent=sent)[0] if meant_lines else None,
    ), consumed


def _is_hedged(value: str) -> bool:
    """"Resolved?", "SEV1??", "still Bob", "maybe mitigating": a guess, not a value."""
    text = value.strip(_EMPHASIS + ".!").lower()
    words = re.findall(r"[a-z']+", text)
    return text.endswith("?") or text.split(" ", 1)[0].endswith("?") or \
        (len(words) > 1 and words[0] in _HEDGES)  # "maybe" alone is just not a value


_KEY_LIKE = re.compile(r"[ \t*•+·–—◦▪-]{0,6}([A-Za-z][A-Za-z_ -]{1,24}?)[ \t*_`]*[:：]")


def _misspelled_key(text: str, lang: Language) -> tuple[str, str] | None:
    """(key as written, the known key it is closest to) for a "Key: value" line whose key
    is one or two letters away from a field's or a role's ("sevrity", "Comander"), else
    None: prose with a colon ("Note: ...", "The status: ...") is left alone."""
    m = _KEY_LIKE.match(text)
    if m is None:
        return None
    written = m.group(1).strip()
    key = normalise_key(written)
    if len(key) < 4 or key in _KEY_TO_FIELD or key in lang.roles:
        return None
    known = [*_KEY_TO_FIELD, *lang.roles]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    return (written, close[0].capitalize()) if close else None
