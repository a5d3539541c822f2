"""Postmortem text -> its parts: sections under their headings, action items (owner, due
date), and sentences that blame a person.

Takes plain text (a postmortem's body or attachment) and, for dates, the day it arrived;
hands on dicts of section text, `ReviewedItem`s and `BlameNote`s. Whether that makes an
acceptable postmortem is decided in `rules/postmortem.py`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from mailbot.models import Incident

# Heading words, normalised (lower case, single spaces, no punctuation at the ends).
_SYNONYMS = {
    "cause": ("cause", "causes", "root cause", "root causes", "root cause analysis",
              "what went wrong", "contributing factors", "contributing causes"),
    "impact": ("impact", "customer impact", "user impact", "business impact",
               "who was affected", "what was affected"),
    "resolution": ("resolution", "steps taken", "steps taken to resolve",
                   "steps taken to resolve it", "how it was resolved", "how we resolved it",
                   "mitigation", "mitigation and resolution", "remediation", "fix",
                   "recovery"),
    "prevention": ("prevention", "steps to prevent", "steps to prevent recurrence",
                   "steps to prevent it", "steps to take", "preventing recurrence",
                   "prevent recurrence", "how we prevent recurrence", "preventive measures",
                   "preventative measures", "recurrence prevention"),
    "action_items": ("action items", "action item", "actions", "action points",
                     "follow ups", "follow up items", "follow up actions", "todo", "to do",
                     "todos", "tasks"),
    "timeline": ("timeline", "time line", "chronology", "sequence of events"),
    "summary": ("summary", "overview", "what happened"),
}
_HEADING_NAMES = {name: section for section, names in _SYNONYMS.items() for name in names}


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class ReviewedItem:
    """One action item as read."""

    raw: str
    text: str
    owner: str | None
    due: dt.date | None
    far: bool = False  # due after the horizon: a quarterly-planning candidate
    past: bool = False  # due before the submission day
    unread_due: str = ""  # what followed "due" when it was no date mailbot reads

    @property
    def problems(self) -> tuple[str, ...]:
        due = "due date"
        if self.unread_due:
            due = f'due date mailbot can read ("{self.unread_due}": write it as YYYY-MM-DD)'
        return tuple(p for p, ok in (("owner", self.owner), (due, self.due)) if not ok)


@dataclass(frozen=True)
class BlameNote:
    sentence: str
    person: str  # who is named as the cause ("" for "human error")


# ---------------------------------------------------------------- sections


_PLACEHOLDER = re.compile(r"^\s*<[^<>]*>\s*$")  # template hints like <what failed>
_EMPHASIS = re.compile(r"^(\*\*|__|\*|_)(.+?)\1(.*)$")


def _norm(head: str) -> str:
    head = re.sub(r"\([^)]*\)", " ", head)  # "Action items (owner, due)"
    head = re.sub(r"[-_/&]+", " ", head.lower()).replace(" and ", " and ")
    return re.sub(r"\s+", " ", head).strip(" .:*_#\t")


def heading(line: str) -> tuple[str, str] | None:
    """(section, text after the heading) if `line` is a section heading.

    Accepted: `Cause:`, `Cause: text`, `## Cause`, `**Cause**`, `**Cause:** text`,
    `1. Cause:`, or a line holding only the heading words."""
    s = line.strip()
    marked = False
    m = re.match(r"#{1,6}\s*", s)
    if m and m.end():
        s, marked = s[m.end():], True
    s = re.sub(r"^\d{1,2}[.)]\s+", "", s)
    m = _EMPHASIS.match(s)
    if m:
        head, rest, marked = m.group(2), m.group(3), True
        colon = head.rstrip().endswith(":") or rest.lstrip().startswith(":")
    elif ":" in s:
        head, _, rest = s.partition(":")
        colon = True
    else:
        head, rest, colon = s, "", False
    name = _norm(head)
    section = _HEADING_NAMES.get(name)
    if section is None:
        return None
    rest = rest.strip().lstrip(":").strip()
    if marked or colon or not rest:
        return section, rest
    return None


def _written_heading(line: str) -> str:
    """A heading line as its author wrote the words: "## Root cause:" -> "Root cause"."""
    s = re.sub(r"^#{1,6}\s*", "", line.strip())
    s = re.sub(r"^\d{1,2}[.)]\s+", "", s)
    m = _EMPHASIS.match(s)
    head = m.group(2) if m else s.partition(":")[0]
    return head.strip().rstrip(":").strip()


def section_headings(text: str) -> dict[str, str]:
    """Section -> its heading as first written ("Root cause", "Follow-ups")."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        h = heading(line)
        if h is not None and h[0] not in found:
            found[h[0]] = _written_heading(line)
    return found


def split_sections(text: str) -> dict[str, str]:
    """Section -> its text, placeholders removed; repeated headings are joined."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        h = heading(line)
        if h is not None:
            current = h[0]
            found.setdefault(current, [])
            if h[1]:
                found[current].append(h[1])
            continue
        if current is not None and not _PLACEHOLDER.match(line):
            found[current].append(line.rstrip())
    return {k: "\n".join(v).strip("\n") for k, v in found.items()}


# ---------------------------------------------------------------- action items


_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|\[[ xX]?\])\s+(?:\[[ xX]?\]\s+)?(.*)$")
_EMAIL = r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+"
_OWNER = re.compile(
    r"(?i:\b(?:owner|owned by|assignee|assigned to)\b\s*[:=]?|\bwho\s*[:=])\s*"
    r"(?P<v>" + _EMAIL + r"|@[\w.-]+|[^—–|;,()\[\]:]+?)"
    r"(?=\s*(?:[—–|;,()\[\]]|\s-\s|$)|\s+(?i:due|deadline|by|until|eta)\b)")
_HANDLE = re.compile(r"(?<![\w.])@(?P<v>[A-Za-z][\w.-]*[\w])")
_BARE_EMAIL = re.compile(r"(?P<v>" + _EMAIL + r")")
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    start=1)}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY = r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|nesday|rsday|urday)?\.?"
_MON = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = (r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}"
         r"|\d{1,2}(?:st|nd|rd|th)?\s+" + _MON + r"(?:,?\s+\d{4})?"
         r"|" + _MON + r"\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?"
         r"|\d{1,2}\.\d{1,2}\.\d{4}|\d{1,2}/\d{1,2}/\d{4}"
         r"|(?:next\s+)?" + _WEEKDAY +
         r"|today|tomorrow|in\s+\d{1,3}\s+(?:days?|weeks?)|next\s+week)")
_DUE = re.compile(r"(?i)\b(?:due(?:\s+(?:date|by|on))?|deadline|by|until|eta|when)\s*[:=]?\s*"
                  r"(?P<d>" + _DATE + r")\b")
_BARE_ISO = re.compile(r"\b(?P<d>\d{4}-\d{2}-\d{2})\b")
# "due ..." followed by something that is no date mailbot reads: named in the reply.
_DUE_TEXT = re.compile(r"(?i)\b(?:due(?:\s+(?:date|by|on))?|deadline|eta)\s*[:=]\s*"
                       r"(?P<d>[^\s,;|()\[\]—–][^,;|()\[\]—–]{0,29}?)\s*(?:$|[,;|()\[\]—–]|\s-\s)")


def parse_date(text: str, today: dt.date) -> dt.date | None:
    """A due date as people write it; a date without a year is the next such day."""
    t = text.strip().lower().rstrip(".")
    try:
        if re.fullmatch(r"\d{4}[-/]\d{1,2}[-/]\d{1,2}", t):
            y, mo, d = (int(x) for x in re.split(r"[-/]", t))
            return dt.date(y, mo, d)
        m = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", t)  # 28.11.2026: day first
        if m:
            return dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", t)
        if m:  # 11/28/2026 or 28/11/2026; 03/04/2026 could be either: not guessed
            a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if a > 12 >= b:
                return dt.date(y, b, a)
            if b > 12 >= a:
                return dt.date(y, a, b)
            return None
        m = re.fullmatch(r"(?:next\s+)?([a-z]{3})[a-z]*", t)
        if m and m.group(1) in _WEEKDAYS:  # the next such day after today
            ahead = (_WEEKDAYS.index(m.group(1)) - today.weekday() - 1) % 7 + 1
            return today + dt.timedelta(days=ahead)
        if t == "today":
            return today
        if t == "tomorrow":
            return today + dt.timedelta(days=1)
        if t == "next week":
            return today + dt.timedelta(days=7)
        m = re.fullmatch(r"in\s+(\d+)\s+(day|week)s?", t)
        if m:
            n = int(m.group(1)) * (7 if m.group(2) == "week" else 1)
            return today + dt.timedelta(days=n)
        m = (re.fullmatch(r"(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?P<m>[a-z]+)\.?"
                          r"(?:,?\s+(?P<y>\d{4}))?", t)
             or re.fullmatch(r"(?P<m>[a-z]+)\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?"
                             r"(?:,?\s+(?P<y>\d{4}))?", t))
        if m and m.group("m")[:3] in _MONTHS:
            month, day = _MONTHS[m.group("m")[:3]], int(m.group("d"))
            if m.group("y"):
                return dt.date(int(m.group("y")), month, day)
            when = dt.date(today.year, month, day)
            return when if when >= today else dt.date(today.year + 1, month, day)
    except ValueError:
        return None
    return None


_TABLE_RULE = re.compile(r"\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")


_OWNER_COLUMNS = {"owner", "owners", "who", "assignee", "assigned to", "responsible"}
_DUE_COLUMNS = {"due", "due date", "deadline", "when", "by", "date", "eta", "target",
                "target date"}


def _table_rows(lines: list[str]) -> list[str]:
    """A Markdown table (`| Item | Owner | Due |`, a `|---|` rule, rows) as one line per
    row, its cells joined by " - "; the header row and the rule go. A cell under an Owner
    or a Due column is labelled ("owner: Ben", "due: Friday"), so it reads like an item
    written on one line."""
    out: list[str] = []
    columns: list[str] = []
    for i, line in enumerate(lines):
        if "|" in line and i + 1 < len(lines) and _TABLE_RULE.fullmatch(lines[i + 1]):
            columns = [_norm(c) for c in line.strip().strip("|").split("|")]
            continue  # the header row
        if _TABLE_RULE.fullmatch(line):
            continue
        if line.strip().startswith("|") and line.count("|") >= 2:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            labelled = []
            for n, cell in enumerate(cells):
                column = columns[n] if n < len(columns) else ""
                if cell and column in _OWNER_COLUMNS and not _OWNER.search(cell):
                    cell = "owner: " + cell
                elif cell and column in _DUE_COLUMNS and not _DUE.search(cell):
                    cell = "due: " + cell
                labelled.append(cell)
            line = " - ".join(c for c in labelled if c)
        out.append(line)
    return out


# A closing line after the items: "Thanks,", "Best regards", "-- ", "Alice", "Alice Smith".
_CLOSING = re.compile(r"(?i)^(?:--\s*|thanks?(?: you)?|thx|cheers|best(?: regards| wishes)?|"
                      r"regards|kind regards|many thanks|sincerely|br|/\w+)[,.!]?$")
_SIGNED_NAME = re.compile(r"^[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,2}[,.]?$")


def _is_sign_off(line: str) -> bool:
    """A closing or a bare name on a plain line: a signature, not an item."""
    s = line.strip()
    return bool(_CLOSING.match(s) or (_SIGNED_NAME.match(s) and not _DUE.search(s)
                                      and "@" not in s))


def item_lines(section: str) -> list[str]:
    """Bullets (with their indented continuation lines), one item per plain line, or the
    rows of a Markdown table. A sign-off after the items ("Thanks,", "Alice") ends them."""
    items: list[str] = []
    for line in _table_rows(section.splitlines()):
        if not line.strip():
            continue
        m = _BULLET.match(line)
        if m:
            items.append(m.group(1).strip())
        elif items and _is_sign_off(line):
            break
        elif items and line[:1].isspace():
            items[-1] += " " + line.strip()
        elif line.strip().endswith(":"):
            continue  # an introduction ("We agreed on:")
        else:
            items.append(line.strip())
    return [i for i in items if not re.fullmatch(r"(?i)(none|n/?a|-+|nothing)\.?", i)]


def parse_action_item(raw: str, today: dt.date, horizon: dt.date) -> ReviewedItem:
    """Owner, due date and text of one item. See docs/scheduled.md for the forms."""
    owner = due = None
    spans: list[tuple[int, int]] = []
    m = _OWNER.search(raw)
    if m:
        owner = m.group("v").strip().strip("*_").strip().lstrip("@") or None
        spans.append(m.span())
    else:
        h = _HANDLE.search(raw) or _BARE_EMAIL.search(raw)
        if h:
            owner = h.group("v")
            spans.append(h.span())
    unread = ""
    d = _DUE.search(raw)
    if d:
        due = parse_date(d.group("d"), today)
        spans.append(d.span())
        if due is None:
            unread = d.group("d").strip()
    else:
        b = _BARE_ISO.search(raw)
        if b:
            due = parse_date(b.group("d"), today)
            spans.append(b.span())
        else:
            t = _DUE_TEXT.search(raw)
            unread = t.group("d").strip() if t else ""
    text = raw
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + " " + text[end:]
    text = re.sub(r"[(\[][\s,;|—–-]*[)\]]", " ", text)
    text = re.sub(r"(?:\s*(?:[—–|;,]|\s-\s))+\s*$", "", text)
    text = re.sub(r"\s+", " ", text).strip(" —–|;,-").strip()
    return ReviewedItem(raw=raw, text=text or raw, owner=owner, due=due,
                        far=bool(due and due > horizon), past=bool(due and due < today),
                        unread_due="" if due else unread)


# ---------------------------------------------------------------- blame


_NOT_NAMES = set("""
A About After Again All Also An And Any As At Because Before Both But By Customers Cause
Could During Each Eventually Every Everyone Finally First For From However If Impact In
Initially It Its Later Meanwhile Monitoring Alerting Most Next No Nobody Nothing Now Of
On Once Or Our Prevention Resolution Second She He Since So Some Summary Team That The
Their Then There These They This Those Timeline To Today Unfortunately Users We What
When Which While Who Why With Yesterday Ops Support Engineering Note Root Steps Action
""".split()) - {"She", "He"}
_PRONOUNS = {"He", "She", "I"}
_NAME = (r"(?P<name>" + _EMAIL + r"|@[A-Za-z][\w.-]*"
         r"|(?:[A-Z][a-z]+\s+)?[A-Z][a-z]+|I)")
_ADVERBS = r"(?:(?:had|has|then|just|also|accidentally|mistakenly|carelessly|wrongly|" \
           r"inadvertently|apparently)\s+)*"
_HUMAN = (r"(?:forgot|neglected|overlooked|ignored|mistyped|fat[- ]fingered|botched|"
          r"messed up|screwed up|should(?:n't| not)? have|"
          r"did(?:n't| not) (?:check|test|review|verify|notice|follow|read|bother|ask)|"
          r"failed to (?:check|test|review|verify|notice|follow|read|ask|run)|"
          r"was careless|wasn't careful|was not careful|"
          r"(?:accidentally|mistakenly|carelessly|wrongly|inadvertently) \w+)")
_ACT = (r"(?:pushed|deployed|merged|shipped|committed|ran|deleted|dropped|introduced|made|"
        r"approved|changed|wrote|released|rolled out|applied|configured|typed|entered|"
        r"uploaded|removed)")
_BAD = (r"(?:bad|broken|buggy|faulty|wrong|incorrect|untested|unreviewed|bug|bugs|typo|"
        r"mistake|error|errors)")
_WEAK = (r"(?:failed to|broke|caused|misconfigured|deleted|dropped|took down|brought down|"
         r"crashed|disabled|removed|is to blame|was to blame)")
_BLAME_PATTERNS = (
    ("any", re.compile(_NAME + r"\s+" + _ADVERBS + r"(?i:" + _HUMAN + r")\b")),
    ("any", re.compile(_NAME + r"\s+" + _ADVERBS + r"(?i:" + _ACT + r")\s+(?:\S+\s+){0,3}?"
                       r"(?i:(?:the\s+)?" + _BAD + r")\b")),
    ("any", re.compile(_NAME + r"['’]s\s+(?i:(?:mistake|fault|error|typo|carelessness|"
                       r"negligence|oversight|bad (?:change|commit|deploy|deployment|push|"
                       r"code|config|merge)))\b")),
    ("known", re.compile(_NAME + r"\s+" + _ADVERBS + r"(?i:" + _WEAK + r")\b")),
    ("known", re.compile(r"(?i:\b(?:caused|introduced|broken|triggered) by|because of|"
                         r"blame)\s+" + _NAME)),
)
_HUMAN_ERROR = re.compile(r"(?i)\bhuman error\b")


def _person(name: str, people: set[str], need_known: bool) -> str | None:
    words = name.split()
    while words and words[0] in _NOT_NAMES:
        words = words[1:]
    if not words:
        return None
    name = " ".join(words)
    if "@" in name:
        return name
    if need_known:
        return name if any(w.lower() in people for w in words) else None
    return name


def _sentences(text: str) -> list[str]:
    paragraphs: list[list[str]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or _BULLET.match(line) or heading(line):
            paragraphs.append([])
        if stripped:
            m = _BULLET.match(line)
            paragraphs[-1].append(m.group(1) if m else stripped)
    out: list[str] = []
    for para in paragraphs:
        joined = " ".join(para).strip()
        if joined:
            out.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[\"'(A-Z@])", joined)
                       if s.strip())
    return out


def find_blame(text: str, people: Iterable[str] = ()) -> tuple[BlameNote, ...]:
    """Sentences that make a person the cause of a failure."""
    known = {p.lower() for p in people if len(p) >= 2}
    notes: list[BlameNote] = []
    for sentence in _sentences(text):
        who = None
        for kind, pattern in _BLAME_PATTERNS:
            for m in pattern.finditer(sentence):
                who = _person(m.group("name"), known, need_known=(kind == "known"))
                if who is not None:
                    break
            if who is not None:
                break
        if who is None and _HUMAN_ERROR.search(sentence):
            who = ""
        if who is not None:
            quoted = sentence if len(sentence) <= 300 else sentence[:299] + "…"
            notes.append(BlameNote(quoted, who))
    return tuple(notes)


def people_of(incident: Incident | None) -> set[str]:
    """Names by which the incident's people may be mentioned (first names, local parts)."""
    if incident is None:
        return set()
    raw = [incident.commander, incident.postmortem_owner, incident.declared_by,
           *incident.roles.values(), *(e.author for e in incident.timeline)]
    names: set[str] = set()
    for person in raw:
        if not person:
            continue
        person = person.lower()
        local = person.split("<")[-1].split("@")[0] if "@" in person else person
        for part in re.split(r"[\s._+<>-]+", local):
            if len(part) >= 2 and part.isalpha():
                names.add(part)
        display = person.split("<")[0] if "<" in person else ""
        names.update(w for w in re.split(r"\W+", display) if len(w) >= 2)
    return names - {"incident", "incidents", "mailbot", "oncall", "ops", "team", "admin"}


# ---------------------------------------------------------------- people


def people_directory(people: Iterable[tuple[str, str]]) -> dict[str, str]:
    """(name, address) pairs (the experts directory) -> every way a person is named
    ("ben ortiz", "ben.ortiz", the address, its local part, "ben") -> their address. A
    full name or local part wins over a first name; a name two people share names
    neither of them."""
    strong: dict[str, set[str]] = {}
    weak: dict[str, set[str]] = {}
    for name, address in people:
        address = address.strip().lower()
        keys = {address, address.split("@")[0]}
        full = " ".join(name.lower().split())
        if full:
            keys |= {full, full.replace(" ", ".")}
            weak.setdefault(full.split()[0], set()).add(address)
        for key in keys:
            strong.setdefault(key, set()).add(address)
    found = {k: next(iter(a)) for k, a in weak.items() if len(a) == 1 and k not in strong}
    found.update({k: next(iter(a)) for k, a in strong.items() if len(a) == 1})
    return found


def resolve_owner(owner: str | None, people: Mapping[str, str]) -> str | None:
    """An owner as written ("@ben", "Ben", "Ben Ortiz", an address) -> the address the
    directory knows them by; as written when it does not know them."""
    if not owner:
        return owner
    key = " ".join(owner.strip().lstrip("@").lower().split())
    return people.get(key) or owner
