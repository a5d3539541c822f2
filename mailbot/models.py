"""The types handed from stage to stage.

ingress -> SpooledMail -> parsing -> ParsedMail -> rules -> Decision -> incidents/store
(Incident, TimelineEntry) -> compose -> OutgoingMail -> outbox.

No stage passes raw dicts, TinyDB documents or mail-parser objects to the next one.
"""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr
from dataclasses import dataclass, field, fields as dc_fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Mapping


# ---------------------------------------------------------------- ingress -> spool



def address_of(person: str | None) -> str:
    """The address in a person as written ("Alice <a@x>" or "a@x"), lower case; "" for a
    bare name or nothing."""
    addr = parseaddr(person or "")[1].strip().lower()
    return addr if "@" in addr and " " not in addr else ""

@dataclass(frozen=True)
class SpooledMail:
    """A message as accepted: its bytes, durably in the spool."""

    name: str  # spool file name; sorts in arrival order
    path: Path
    raw: bytes
    received_at: dt.datetime
    source: str  # smtp | lmtp | imap | pipe


# ---------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    text: str | None = None  # decoded for text/* attachments only


@dataclass(frozen=True)
class SubjectTags:
    """What the subject line says, after Re:/Fwd: prefixes and encoded words."""

    declare: bool = False
    incident_id: int | None = None
    other_incidents: tuple[int, ...] = ()  # more [INC-n] tags, other numbers, in order
    reply: bool = False  # the subject starts with Re:/AW:/SV:/Fwd:… (a reply or forward)
    severity: str | None = None  # canonical configured name, e.g. "SEV1"
    phase: str | None = None  # canonical configured phase
    postmortem: bool = False
    status: bool = False
    reviewed: bool = False  # [REVIEWED]: leadership reviewed the postmortem
    done: bool = False  # [DONE]: action items finished ("Done: A1, A2")
    title: str = ""  # the subject without prefixes and tags
    unknown: tuple[str, ...] = ()  # bracketed words that were not tags


@dataclass(frozen=True)
class InvalidField:
    """A field that was present but whose value is not acceptable."""

    field: str  # canonical field name, e.g. "severity"
    value: str  # what the person wrote
    valid: tuple[str, ...] = ()  # what would have been accepted, when it is a closed set
    hedged: bool = False  # a "?" or a word like "still" made it a guess, not a statement


@dataclass(frozen=True)
class FieldLine:
    """One `Key: value` line as read, for `mailbot check`."""

    key: str  # as written
    field: str  # canonical field name ("roles" for per-role shorthand)
    value: str
    where: str  # "new" | "quoted" | "signature"


def _stated_as(*keys: str, recorded: bool = True, **default: Any) -> Any:
    """A field a message states as `Key: value` under any of `keys` (PRODUCT.md's table;
    case, spaces, underscores and hyphens aside). `recorded`: the incident keeps the value
    as stated, in its attribute of the same name."""
    if not default:
        default = {"default": None}
    return field(metadata={"keys": keys, "recorded": recorded}, **default)


@dataclass(frozen=True)
class Fields:
    """The incident fields read from the new text. None means "not stated".

    Each field is defined here once, with the keys it is written under: the parser's key
    table (`FIELD_KEYS`) and the fields an incident records (`RECORDED_FIELDS`) are read
    from these definitions."""

    severity: str | None = _stated_as("severity", "sev")
    phase: str | None = _stated_as("phase", "status", "stage")
    commander: str | None = _stated_as("commander", "ic", "incident-commander")
    # role (lower case) -> person; merged into the incident's roles, not replacing them
    roles: Mapping[str, str] = _stated_as("roles", "involved", "members", recorded=False,
                                          default_factory=dict)
    channel: str | None = _stated_as("channel", "where", "bridge")
    summary: str | None = _stated_as("summary", "issue", "what")
    impact: str | None = _stated_as("impact")
    customer_impact: bool | None = _stated_as("customer-impact", "customer-facing")
    services: tuple[str, ...] | None = _stated_as("services", "service")
    postmortem_owner: str | None = _stated_as("postmortem-owner", "post-mortem-owner")
    # `Page:`: services or people to page now (an order, not part of the incident's state)
    page: tuple[str, ...] | None = _stated_as("page", recorded=False)
    # When it really began / ended (`Started-At:` / `Resolved-At:`), aware UTC. The end
    # counts only with the resolution (incidents.py), so it is not recorded as stated.
    started_at: dt.datetime | None = _stated_as("started-at", "start-time", "began-at")
    resolved_at: dt.datetime | None = _stated_as("resolved-at", "end-time", "ended-at",
                                                 recorded=False)
    invalid: tuple[InvalidField, ...] = ()
    # Fields written with a placeholder ("unchanged", "TBD"), read as blank: (field, value
    # as written), so a rejection can say why a field it asks for counts as missing.
    blanked: tuple[tuple[str, str], ...] = ()
    lines: tuple[FieldLine, ...] = ()
    # Lines of the new text whose key is close to a field's but not one ("sevrity:"):
    # (the key as written, the field key it is probably meant to be).
    misspelled: tuple[tuple[str, str], ...] = ()
    # What those lines would state under the key they are probably meant to be: for the
    # rejection's paste-back block, never applied.
    as_meant: "Fields | None" = None


# canonical field -> the keys it is written under, in the order of `Fields`
FIELD_KEYS: Mapping[str, tuple[str, ...]] = {
    f.name: f.metadata["keys"] for f in dc_fields(Fields) if "keys" in f.metadata}
# The fields an incident keeps as a message states them (attributes of `Incident` too).
RECORDED_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dc_fields(Fields) if f.metadata.get("recorded"))


@dataclass(frozen=True)
class ParsedMail:
    """Everything the rules need to know about one message."""

    key: str  # dedupe key: the Message-ID, or "sha256:<hex>" for mail without one
    message_id: str  # without angle brackets; "" when absent
    from_address: str  # lower-cased addr-spec of From:, "" when unusable
    from_name: str
    envelope_sender: str | None  # SMTP MAIL FROM via Return-Path; "" is the null sender
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str  # decoded, unfolded, one line
    date: dt.datetime | None  # the message's own Date:, aware
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]  # (lower-case name, decoded value), in order
    content_type: str  # top-level media type, lower case
    tags: SubjectTags
    fields: Fields
    new_text: str  # the new text, quotes and signature removed
    narrative: str  # new text without the field lines: "what changed"
    quoted_text: str = ""
    signature: str = ""
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = ()
    size: int = 0
    report: str = ""  # the delivery-report format its text is written in, "" if none
    # (lower-case name, value as written: unfolded, encoded words not decoded), in order;
    # what identity (Authentication-Results, author headers) is read from.
    raw_headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    def raw_header_all(self, name: str) -> list[str]:
        """Every value of header `name` as written (see `raw_headers`)."""
        name = name.lower()
        return [value for key, value in self.raw_headers if key == name]

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this one replies to, nearest first."""
        seen: list[str] = []
        for mid in (*self.in_reply_to, *reversed(self.references)):
            if mid and mid not in seen:
                seen.append(mid)
        return tuple(seen)


# ---------------------------------------------------------------- incidents


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any


def _plain(value: Any) -> Any:
    """A change's value as JSON holds it (an instant as ISO 8601)."""
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _typed(name: str, value: Any) -> Any:
    """A change's value as read back: the instants of `started_at` / `resolved_at`."""
    if name in ("started_at", "resolved_at") and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return value


@dataclass(frozen=True)
class TimelineEntry:
    kind: str  # declared | updated | rejected | comment | resolved | reopened | postmortem-* |
    # reminder
    at: dt.datetime  # when mailbot received it
    author: str
    message_id: str = ""
    message_date: dt.datetime | None = None
    changes: tuple[Change, ...] = ()
    note: str = ""  # the narrative: what changed, in the author's words
    text: str = ""  # a rejected message's own words (its note is the reason)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "at": self.at.isoformat(),
            "author": self.author,
            "message_id": self.message_id,
            "message_date": self.message_date.isoformat() if self.message_date else None,
            "changes": [[c.field, _plain(c.old), _plain(c.new)] for c in self.changes],
            "note": self.note,
        }
        if self.text:  # absent when empty, so records written before it read back the same
            d["text"] = self.text
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TimelineEntry":
        return cls(
            kind=d["kind"],
            at=dt.datetime.fromisoformat(d["at"]),
            author=d["author"],
            message_id=d.get("message_id", ""),
            message_date=(dt.datetime.fromisoformat(d["message_date"])
                          if d.get("message_date") else None),
            changes=tuple(Change(f, _typed(f, o), _typed(f, n))
                          for f, o, n in d.get("changes", [])),
            note=d.get("note", ""),
            text=d.get("text", ""),
        )


@dataclass(frozen=True)
class ActionItem:
    text: str
    owner: str | None
    due: dt.date | None
    number: int = 0  # A1, A2, ... within its incident; 0 for a quarterly-planning item
    done_at: dt.datetime | None = None
    done_by: str = ""
    reminded: tuple[str, ...] = ()  # "due", "overdue": reminders its owner was sent

    @property
    def label(self) -> str:
        return f"A{self.number}" if self.number else ""

    def state(self, today: dt.date) -> str:
        """done | overdue | due (today) | open."""
        if self.done_at is not None:
            return "done"
        if self.due is not None and self.due < today:
            return "overdue"
        if self.due is not None and self.due == today:
            return "due"
        return "open"

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "owner": self.owner,
                "due": self.due.isoformat() if self.due else None, "number": self.number,
                "done_at": self.done_at.isoformat() if self.done_at else None,
                "done_by": self.done_by, "reminded": list(self.reminded)}

    @classmethod
    def from_dict(cls, d: Any) -> "ActionItem":
        if isinstance(d, (list, tuple)):  # records written before items were numbered
            t, o, due = d
            return cls(t, o, dt.date.fromisoformat(due) if due else None)
        return cls(d["text"], d.get("owner"),
                   dt.date.fromisoformat(d["due"]) if d.get("due") else None,
                   number=d.get("number", 0),
                   done_at=dt.datetime.fromisoformat(d["done_at"]) if d.get("done_at") else None,
                   done_by=d.get("done_by", ""), reminded=tuple(d.get("reminded", ())))


@dataclass(frozen=True)
class Postmortem:
    accepted_at: dt.datetime
    author: str
    message_id: str
    text: str
    sections: Mapping[str, str]
    action_items: tuple[ActionItem, ...] = ()
    quarterly: tuple[ActionItem, ...] = ()  # due past the horizon: for quarterly planning
    reviewed_at: dt.datetime | None = None
    reviewed_by: str = ""
    headings: Mapping[str, str] = field(default_factory=dict)  # section -> as written

    def item(self, label: str) -> ActionItem | None:
        return next((a for a in self.action_items if a.label.lower() == label.lower()), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted_at": self.accepted_at.isoformat(),
            "author": self.author,
            "message_id": self.message_id,
            "text": self.text,
            "sections": dict(self.sections),
            "action_items": [a.to_dict() for a in self.action_items],
            "quarterly": [a.to_dict() for a in self.quarterly],
            "reviewed_at": self.reviewed_at.isoformat() if self.reviewed_at else None,
            "reviewed_by": self.reviewed_by,
            "headings": dict(self.headings),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Postmortem":
        return cls(
            accepted_at=dt.datetime.fromisoformat(d["accepted_at"]),
            author=d["author"],
            message_id=d["message_id"],
            text=d["text"],
            sections=dict(d["sections"]),
            action_items=tuple(ActionItem.from_dict(a) for a in d.get("action_items", [])),
            quarterly=tuple(ActionItem.from_dict(a) for a in d.get("quarterly", [])),
            reviewed_at=(dt.datetime.fromisoformat(d["reviewed_at"])
                         if d.get("reviewed_at") else None),
            reviewed_by=d.get("reviewed_by", ""),
            headings=dict(d.get("headings", {})),
        )


@dataclass(frozen=True)
class Page:
    """One page mailed (or refused) for an incident's `Page:` field, or its escalation."""

    target: str  # as written in `Page:`: a service name or an address
    person: str  # the address of the person paged ("" when nobody could be)
    name: str  # how the person is shown
    at: dt.datetime  # when it was paged
    service: str = ""  # the canonical service paged, "" for a person
    sent_to: str = ""  # the address the page went to (a pager, or the normal address)
    level: int = 0  # 0: the one asked for; 1: the next in the rotation; 2: the owner
    answered_at: dt.datetime | None = None  # someone of the paged side wrote after it
    note: str = ""  # why it was not sent, when it was not

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dc_fields(self)}
        d["at"] = self.at.isoformat()
        d["answered_at"] = self.answered_at.isoformat() if self.answered_at else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Page":
        names = {f.name for f in dc_fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        values["at"] = dt.datetime.fromisoformat(d["at"])
        values["answered_at"] = (dt.datetime.fromisoformat(d["answered_at"])
                                 if d.get("answered_at") else None)
        return cls(**values)


_NARRATIVE_KINDS = ("declared", "updated", "resolved", "reopened", "comment")
_DATETIME_FIELDS = ("declared_at", "started_at", "updated_at", "resolved_at", "closed_at",
                    "last_reminder_at", "postmortem_reminded_at")


@dataclass
class Incident:
    """One incident's record: its current state and its timeline."""

    id: int
    title: str
    status: str = "open"  # open | resolved | closed
    severity: str | None = None
    phase: str | None = None
    commander: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    channel: str | None = None
    summary: str | None = None
    impact: str | None = None
    customer_impact: bool | None = None
    services: tuple[str, ...] = ()
    postmortem_owner: str | None = None
    declared_by: str = ""
    declared_at: dt.datetime | None = None
    started_at: dt.datetime | None = None  # `Started-At:`, when it began before it was declared
    updated_at: dt.datetime | None = None  # last accepted declaration or follow-up
    resolved_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    last_reminder_at: dt.datetime | None = None
    stale_reminders: int = 0  # stale reminders in a row (see reminders.missed_reminders)
    postmortem_reminded_at: dt.datetime | None = None
    postmortem_reminders: int = 0
    root_message_id: str = ""
    rejected_count: int = 0
    # Who got the one private "how to update" note for a comment (never a second one).
    comment_noted: tuple[str, ...] = ()
    timeline: list[TimelineEntry] = field(default_factory=list)
    postmortem: Postmortem | None = None
    pages: tuple[Page, ...] = ()

    @property
    def paged_addresses(self) -> frozenset[str]:
        """Everyone mailbot paged for this incident, by their address and the one paged:
        they may write to its thread like allowed senders. A refused page (an address
        outside the directory and the allowed senders) lets nobody in."""
        return frozenset(a for p in self.pages if p.sent_to for a in (p.person, p.sent_to))

    # The review invitation sent: {"uid", "start" (ISO), "sequence", "cancelled"}.
    review_invite: dict[str, Any] | None = None

    @property
    def review_pending(self) -> bool:
        """Resolved with an accepted postmortem that nobody has reviewed yet."""
        return (self.status == "resolved" and self.postmortem is not None
                and self.postmortem.reviewed_at is None)

    def ref(self, prefix: str = "INC") -> str:
        return f"{prefix}-{self.id}"

    @property
    def began_at(self) -> dt.datetime | None:
        """When the incident really began: `Started-At:`, else its declaration."""
        return self.started_at or self.declared_at

    @property
    def summary_text(self) -> str:
        """What the incident is, as every view shows it: `Summary:`, else its title."""
        return self.summary or self.title

    def duration(self, now: dt.datetime) -> dt.timedelta | None:
        """How long it lasted (from its start to its resolution), or has lasted until `now`."""
        began = self.began_at
        if began is None:
            return None
        end = self.resolved_at if self.status != "open" and self.resolved_at else now
        return max(end - began, dt.timedelta(0))

    def latest_word(self) -> TimelineEntry | None:
        """The latest entry that says in someone's words what is going on (an accepted
        update's narrative, or a comment in the thread)."""
        for entry in reversed(self.timeline):
            if entry.note and entry.kind in _NARRATIVE_KINDS:
                return entry
        return None

    @property
    def liaisons(self) -> tuple[str, ...]:
        """The people named as customer liaison (`liaison`, `liaison2`, `customer-liaison`)."""
        return tuple(person for role, person in self.roles.items()
                     if role.startswith("liaison") or role == "customer-liaison")

    @property
    def needs_liaison(self) -> bool:
        """Customer-affecting and nobody named as liaison."""
        return bool(self.customer_impact) and not self.liaisons

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in dc_fields(self):
            value = getattr(self, f.name)
            if f.name in _DATETIME_FIELDS:
                value = value.isoformat() if value else None
            elif f.name == "timeline":
                value = [e.to_dict() for e in value]
            elif f.name == "postmortem":
                value = value.to_dict() if value else None
            elif f.name == "pages":
                value = [p.to_dict() for p in value]
            elif f.name in ("services", "comment_noted"):
                value = list(value)
            elif f.name == "roles":
                value = dict(value)
            d[f.name] = value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Incident":
        kwargs: dict[str, Any] = {}
        names = {f.name for f in dc_fields(cls)}
        for key, value in d.items():
            if key not in names:
                continue
            if key in _DATETIME_FIELDS:
                value = dt.datetime.fromisoformat(value) if value else None
            elif key == "timeline":
                value = [TimelineEntry.from_dict(e) for e in value]
            elif key == "postmortem":
                value = Postmortem.from_dict(value) if value else None
            elif key == "pages":
                value = tuple(Page.from_dict(p) for p in value)
            elif key in ("services", "comment_noted"):
                value = tuple(value)
            elif key == "roles":
                value = dict(value)
            kwargs[key] = value
        return cls(**kwargs)

    def public_dict(self, prefix: str = "INC") -> dict[str, Any]:
        """The `--json` shape promised by PRODUCT.md (and a few extras)."""
        d = self.to_dict()
        d["ref"] = self.ref(prefix)
        return d


# ---------------------------------------------------------------- rules -> pipeline

@dataclass(frozen=True)
class Facts:
    """What the pipeline looked up for the rules, so that they stay pure."""

    incident: Incident | None = None  # the incident the mail is about, if it exists
    incident_id: int | None = None  # the id it refers to (tag or thread), even if unknown
    via_thread: bool = False  # the id came from In-Reply-To/References, not the subject
    in_incident_thread: bool = False  # it replies in an incident's thread (known when the
    # subject names no incident, or carries [DECLARE])
    own_message: bool = False  # its Message-ID is one mailbot generated
    answers: str = ""  # the kind of mailbot mail nearest in its thread ("reminder_postmortem")
    # The incident's severity, phase and commander as the message it replies to showed
    # them (recorded when that message was processed or sent), when known.
    replied_state: Mapping[str, str | None] | None = None
    today: dt.date | None = None  # the day it arrived, in [schedule] tz: what due dates
    # in a postmortem are relative to
    people: Mapping[str, str] = field(default_factory=dict)  # names, handles -> addresses


class Action(StrEnum):
    """What processing a message does: `Decision.action`. Each final action has one
    handler in `planning.Planner`; the values are kept (the message index's "outcome")
    and shown by `mailbot check`."""

    IGNORE = "ignore"  # loops, bounces, strangers: nothing changes, nobody hears
    ARCHIVE = "archive"  # chatter: kept raw, linked to its incident when it has one
    STATUS = "status"  # [STATUS]: the live incidents, to the sender
    DECLARE = "declare"
    UPDATE = "update"
    COMMENT = "comment"  # in an incident's thread, states no field: kept, not applied
    REJECT = "reject"  # not applied; the sender hears why (a `Problem`)
    # A submission: the postmortem rule, later in the chain, always turns it into one
    # of the next two, so it is never a final action.
    POSTMORTEM = "postmortem"
    POSTMORTEM_ACCEPT = "postmortem-accept"
    POSTMORTEM_REJECT = "postmortem-reject"
    REVIEWED = "reviewed"
    REVIEW_REFUSED = "review-refused"  # the sender hears why (a `Refusal`)
    DONE = "done"
    DONE_REFUSED = "done-refused"


class Problem(StrEnum):
    """Why a message was not applied: `details["problem"]` of a `reject`, each worded
    in templates/mail/rejection.txt."""

    UNKNOWN_INCIDENT = "unknown-incident"
    POSTMORTEM_WITHOUT_INCIDENT = "postmortem-without-incident"
    SEVERAL_INCIDENTS = "several-incidents"
    POSTMORTEM_BEFORE_RESOLVED = "postmortem-before-resolved"
    INCOMPLETE_FOLLOW_UP = "incomplete-follow-up"
    WRITTEN_BEFORE_RESOLUTION = "written-before-resolution"
    OLDER_STATE = "older-state"


class Refusal(StrEnum):
    """Why a review or a "done" was refused: `details["problem"]` of a `review-refused`
    or `done-refused`, worded in review_refused.txt and done_refused.txt."""

    NO_POSTMORTEM = "no-postmortem"
    OPEN = "open"  # reopened since: its review waits for the new end
    ALREADY_REVIEWED = "already-reviewed"
    NOT_ALLOWED = "not-allowed"
    UNKNOWN_ITEMS = "unknown-items"


@dataclass(frozen=True)
class Decision:
    """What the rules concluded about one message. Pure data; the pipeline acts on it."""

    action: Action
    reason: str = ""  # one line for the log and `mailbot check`
    incident_id: int | None = None
    missing: tuple[str, ...] = ()  # required items not stated
    invalid: tuple[InvalidField, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- compose -> outbox


@dataclass(frozen=True)
class OutgoingMail:
    """A fully rendered message and its envelope; the outbox knows nothing else."""

    name: str  # unique, deterministic queue name (derived from what caused it)
    mail_from: str
    recipients: tuple[str, ...]
    message: bytes
    message_id: str = ""
    kind: str = ""  # the template it came from, for logs

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies every field (a copy of the whole message).
        return {"name": self.name, "mail_from": self.mail_from,
                "recipients": list(self.recipients),
                "message": self.message.decode("utf-8", "surrogateescape"),
                "message_id": self.message_id, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OutgoingMail":
        return cls(
            name=d["name"],
            mail_from=d["mail_from"],
            recipients=tuple(d["recipients"]),
            message=d["message"].encode("utf-8", "surrogateescape"),
            message_id=d.get("message_id", ""),
            kind=d.get("kind", ""),
        )
