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

`Summary:` and `Impact:` continue over the following lines until a blank line or the next
field line, because plain-text clients hard-wrap long lines at ~72 columns. `Roles:` and
`Services:` continue onto the next line when the value ends with a comma.

A stated field is applied by its last statement. A last statement whose value is not
acceptable leaves the field None and is listed in `Fields.invalid` with the valid choices.
"""

from __future__ import annotations

import difflib
import re
from typing import Sequence

from mailbot.models import FieldLine, Fields, InvalidField
from mailbot.parsing.language import Language, parse_phase, parse_severity
from mailbot.parsing.quotes import NEW, Line

MAX_FIELD_LINE = 4000  # a longer line is prose (or an attack), not a field
_MAX_CONTINUATION = 30

# canonical field -> accepted keys, as in PRODUCT.md's table
FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "severity": ("severity", "sev"),
    "phase": ("phase", "status", "stage"),
    "commander": ("commander", "ic", "incident-commander"),
    "roles": ("roles", "involved", "members"),
    "channel": ("channel", "where", "bridge"),
    "summary": ("summary", "issue", "what"),
    "impact": ("impact",),
    "customer_impact": ("customer-impact", "customer-facing"),
    "services": ("services", "service"),
    "postmortem_owner": ("postmortem-owner", "post-mortem-owner"),
}
_KEY_TO_FIELD = {key: name for name, keys in FIELD_KEYS.items() for key in keys}
_CONTINUED = {"summary", "impact"}
_LISTS = {"roles", "services"}
_PEOPLE = {"commander", "postmortem_owner"}

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
    text = text[_LEAD.match(text).end():]  # list bullets and numbering
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


def read_fields(lines: Sequence[Line], lang: Language, sender: str = ""
                ) -> tuple[Fields, set[int]]:
    """Fields stated in the new lines; and the indexes of every line read as a field."""
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
            continue  # "?", "TBD", "n/a": a blank someone left, not a value to store
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
        elif field == "services":
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
    return Fields(
        severity=state.get("severity"),  # type: ignore[arg-type]
        phase=state.get("phase"),  # type: ignore[arg-type]
        commander=state.get("commander"),  # type: ignore[arg-type]
        roles=roles,
        channel=state.get("channel"),  # type: ignore[arg-type]
        summary=state.get("summary"),  # type: ignore[arg-type]
        impact=state.get("impact"),  # type: ignore[arg-type]
        customer_impact=state.get("customer_impact"),  # type: ignore[arg-type]
        services=state.get("services"),  # type: ignore[arg-type]
        postmortem_owner=state.get("postmortem_owner"),  # type: ignore[arg-type]
        invalid=tuple(invalid.values()) + tuple(role_invalid),
        lines=tuple(fl for fl, _ in read),
        misspelled=tuple(misspelled),
        as_meant=read_fields(meant_lines, lang, sender)[0] if meant_lines else None,
    ), consumed


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
