"""The incident use cases: declare, apply a follow-up, record a rejection or a comment,
resolve, reopen, close. Take an Incident and a ParsedMail, hand back the new Incident and
what changed. No I/O: the pipeline stores the result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from email.utils import parseaddr

from mailbot.models import Change, Incident, ParsedMail, Postmortem, TimelineEntry
from mailbot.rules.enforcement import stated

RESOLVED = "resolved"
_NOTE_LIMIT = 4000


def _author(mail: ParsedMail) -> str:
    return mail.from_address


def _note(mail: ParsedMail) -> str:
    text = mail.narrative.strip()
    return text if len(text) <= _NOTE_LIMIT else text[:_NOTE_LIMIT] + "…"


def declare(incident_id: int, mail: ParsedMail, now: dt.datetime,
            default_phase: str) -> Incident:
    """A new incident from a declaration. Never refuses: gaps are reported, not blocking."""
    values = stated(mail)
    incident = Incident(
        id=incident_id,
        title=mail.tags.title or mail.subject or f"incident {incident_id}",
        declared_by=_author(mail),
        declared_at=now,
        updated_at=now,
        root_message_id=mail.message_id,
    )
    if "phase" not in values:
        values["phase"] = default_phase
    changes = _assign(incident, values)
    if incident.phase == RESOLVED:
        incident.status = "resolved"
        incident.resolved_at = mail.fields.resolved_at or now  # Resolved-At: when it ended
    incident.timeline.append(TimelineEntry(
        kind="declared", at=now, author=_author(mail), message_id=mail.message_id,
        message_date=mail.date, changes=changes, note=_note(mail)))
    return incident


def apply_followup(incident: Incident, mail: ParsedMail,
                   now: dt.datetime) -> tuple[Incident, tuple[Change, ...], str]:
    """Apply an accepted follow-up. Returns (incident, changes, transition) where the
    transition is "", "resolved" or "reopened"."""
    incident = dataclasses.replace(incident, roles=dict(incident.roles),
                                   timeline=list(incident.timeline))
    was = incident.status
    changes = _assign(incident, stated(mail))
    transition = ""
    if incident.phase == RESOLVED and was == "open":
        incident.status = "resolved"
        incident.resolved_at = mail.fields.resolved_at or now  # Resolved-At: when it ended
        incident.postmortem_reminded_at = None
        incident.postmortem_reminders = 0
        transition = "resolved"
    elif incident.phase != RESOLVED and was in ("resolved", "closed"):
        incident.status = "open"
        incident.resolved_at = None
        incident.closed_at = None
        transition = "reopened"
    elif incident.status == "resolved" and mail.fields.resolved_at is not None and \
            mail.fields.resolved_at != incident.resolved_at:
        changes += (Change("resolved_at", incident.resolved_at, mail.fields.resolved_at),)
        incident.resolved_at = mail.fields.resolved_at
    incident.updated_at = now
    incident.last_reminder_at = None
    kind = {"resolved": "resolved", "reopened": "reopened"}.get(transition, "updated")
    incident.timeline.append(TimelineEntry(
        kind=kind, at=now, author=_author(mail), message_id=mail.message_id,
        message_date=mail.date, changes=changes, note=_note(mail)))
    return incident, changes, transition


def record_rejection(incident: Incident, mail: ParsedMail, now: dt.datetime,
                     reason: str, kind: str = "rejected") -> Incident:
    """Keep a not-applied message in the timeline (never applied). Only a follow-up that
    missed the standard counts as rejected; a postmortem sent back, a refused review or
    done are kept without being counted so."""
    incident = dataclasses.replace(incident, timeline=list(incident.timeline))
    if kind == "rejected":
        incident.rejected_count += 1
    # A postmortem sent back keeps no text: it may blame a person, and the timeline is
    # published on the site. Its reason (how many sentences, which sections) is enough.
    text = "" if kind == "postmortem-rejected" else _note(mail)
    incident.timeline.append(TimelineEntry(
        kind=kind, at=now, author=_author(mail), message_id=mail.message_id,
        message_date=mail.date, note=reason, text=text))
    return incident


def record_comment(incident: Incident, mail: ParsedMail, now: dt.datetime,
                   noted: bool = False) -> Incident:
    """Keep a message that states no field as a comment, with its text. It is no update:
    updated_at and the reminder clock stay as they are. `noted`: its sender is being sent
    the one note on how to update."""
    incident = dataclasses.replace(incident, timeline=list(incident.timeline))
    if noted:
        incident.comment_noted = (*incident.comment_noted, _author(mail))
    incident.timeline.append(TimelineEntry(
        kind="comment", at=now, author=_author(mail), message_id=mail.message_id,
        message_date=mail.date, note=_note(mail)))
    return incident


def accept_postmortem(incident: Incident, postmortem: Postmortem,
                      now: dt.datetime) -> Incident:
    """An accepted postmortem is kept with the incident, which stays resolved until the
    review is recorded (`record_review`)."""
    incident = dataclasses.replace(incident, timeline=list(incident.timeline))
    incident.postmortem = postmortem
    if incident.phase != RESOLVED:
        incident.phase = RESOLVED
    incident.timeline.append(TimelineEntry(
        kind="postmortem-accepted", at=now, author=postmortem.author,
        message_id=postmortem.message_id, note="postmortem accepted; review pending"))
    return incident


def record_review(incident: Incident, mail: ParsedMail, now: dt.datetime) -> Incident:
    """`[REVIEWED]`: who reviewed the postmortem and when; the incident closes."""
    incident = dataclasses.replace(incident, timeline=list(incident.timeline))
    assert incident.postmortem is not None
    incident.postmortem = dataclasses.replace(incident.postmortem, reviewed_at=now,
                                              reviewed_by=_author(mail))
    incident.status = "closed"
    incident.closed_at = now
    incident.timeline.append(TimelineEntry(
        kind="postmortem-reviewed", at=now, author=_author(mail),
        message_id=mail.message_id, message_date=mail.date,
        note="postmortem reviewed; incident closed"))
    return incident


def mark_done(incident: Incident, labels: tuple[str, ...], mail: ParsedMail,
              now: dt.datetime) -> Incident:
    """`[DONE]` with `Done: A1, A2`: those action items are done (the others unchanged)."""
    assert incident.postmortem is not None
    wanted = {label.upper() for label in labels}
    items = tuple(
        dataclasses.replace(a, done_at=now, done_by=_author(mail))
        if a.label.upper() in wanted and a.done_at is None else a
        for a in incident.postmortem.action_items)
    incident = dataclasses.replace(incident, timeline=list(incident.timeline),
                                   postmortem=dataclasses.replace(incident.postmortem,
                                                                  action_items=items))
    incident.timeline.append(TimelineEntry(
        kind="action-items-done", at=now, author=_author(mail), message_id=mail.message_id,
        message_date=mail.date, note="done: " + ", ".join(sorted(wanted))))
    return incident


def _same_person(old: object, new: object) -> bool:
    """"Lena Fischer <lena@x>", "lena@x", "Lena Fischer" and "Lena" are one person:
    restating someone in another form is not a change, and must not lose the address
    (reminders go to it)."""
    if not isinstance(old, str) or not isinstance(new, str):
        return False
    old_name, a = parseaddr(old)
    b = parseaddr(new)[1].lower()
    a = a.lower()
    if "@" in a and a == b:
        return True
    if "@" not in a or ("@" in new and not new.strip().startswith("@")):
        return False
    said = new.strip().lstrip("@").lower()  # a name only ("Bob", "@Grace Liu")
    name = old_name.strip().lower()
    return bool(said and name) and said in (name, name.split()[0])


def _assign(incident: Incident, values: dict[str, object]) -> tuple[Change, ...]:
    changes = []
    for name, new in values.items():
        if name == "roles":
            merged = dict(incident.roles)
            for role, person in dict(new).items():  # type: ignore[call-overload]
                if merged.get(role) != person and not _same_person(merged.get(role), person):
                    changes.append(Change(f"roles.{role}", merged.get(role), person))
                    merged[role] = person
            incident.roles = merged
            continue
        if name == "services":
            new = tuple(new)  # type: ignore[arg-type]
        old = getattr(incident, name)
        if name in ("commander", "postmortem_owner") and _same_person(old, new):
            continue
        if old != new:
            changes.append(Change(name, list(old) if isinstance(old, tuple) else old,
                                  list(new) if isinstance(new, tuple) else new))
            setattr(incident, name, new)
    return tuple(changes)
