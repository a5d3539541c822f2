"""The postmortem review's calendar invitation: when the review is (the first free hour
from `timing.review_start`; leadership attends every review, so two cannot share a slot),
who is invited, and the invitation's state on the incident. The postmortem reminder
attaches the invitation (reminders.py); a reopen cancels it (planning.py)."""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from mailbot.config import Config
from mailbot.ical import review_invitation
from mailbot.jobmail import addresses
from mailbot.models import Incident, address_of
from mailbot.scheduler import local_instant
from mailbot.timing import review_start

if TYPE_CHECKING:
    from mailbot.runtime import Runtime

REVIEW_LENGTH = dt.timedelta(hours=1)
REVIEW_DAY_END = dt.time(17, 0)  # a review is moved to the next hour while its slot is taken
REVIEW_DAY_START = dt.time(10, 0)  # ... and to the next working day from here


def review_uid(rt: "Runtime", incident: Incident) -> str:
    """One UID per incident: a moved or cancelled review is the same calendar event."""
    return f"review-{incident.ref(rt.config.list.incident_prefix)}@{rt.composer.domain}"


def free_review_slot(config: Config, taken: set[dt.datetime],
                     start: dt.datetime) -> dt.datetime:
    """`start`, or the next hour (working days, REVIEW_DAY_START..REVIEW_DAY_END local)
    that no other review holds: leadership is in every review, so two in one slot clash."""
    tz = config.schedule.tz
    while start in taken:
        start += REVIEW_LENGTH
        local = start.astimezone(tz)
        if local.time() >= REVIEW_DAY_END or local.weekday() >= 5:
            day = local.date() + dt.timedelta(days=1)
            while day.weekday() >= 5:
                day += dt.timedelta(days=1)
            start = local_instant(day, REVIEW_DAY_START, tz)
    return start


def review_invite(rt: "Runtime", incident: Incident, now: dt.datetime, owner: str | None,
                  to: list[str], cc: list[str]
                  ) -> tuple[dict[str, Any] | None, dt.datetime | None, bytes | None]:
    """(the invitation state to record, the review's start, the METHOD:REQUEST to attach
    or None). Sent once per resolution; again, with SEQUENCE one up, when the slot moved
    or after a cancellation (a reopen)."""
    config = rt.config
    assert incident.resolved_at is not None
    sent = dict(incident.review_invite or {})
    resolution = incident.resolved_at.isoformat()
    current = (sent and not sent.get("cancelled") and sent.get("resolved") == resolution)
    if current:
        start = dt.datetime.fromisoformat(sent["start"])
        return sent, start, None
    proposed = review_start(config, incident)
    if proposed is None or proposed <= now:
        return incident.review_invite, proposed, None
    taken = {dt.datetime.fromisoformat(i.review_invite["start"])
             for i in rt.store.live_incidents()
             if i.id != incident.id and i.review_invite
             and not i.review_invite.get("cancelled")}
    start = free_review_slot(config, taken, proposed)
    organizer = address_of(owner) or address_of(incident.commander) or config.list.bot_address
    attendees = [a for a in dict.fromkeys([*addresses([incident.commander]), *to, *cc])
                 if a != organizer]
    sequence = sent.get("sequence", -1) + 1 if sent else 0
    ics = review_invitation(
        uid=review_uid(rt, incident), start=start, end=start + REVIEW_LENGTH, now=now,
        summary=f"Postmortem review: {incident.ref(config.list.incident_prefix)} "
                f"{incident.title}",
        description=_invitation_text(rt, incident, start),
        organizer=(_name_of(rt, owner or incident.commander or ""), organizer),
        required=attendees, sequence=sequence)
    invite = {"uid": review_uid(rt, incident), "start": start.isoformat(),
              "sequence": sequence, "cancelled": False, "resolved": resolution,
              "organizer": organizer, "attendees": attendees}
    return invite, start, ics


def review_cancellation(config: Config, incident: Incident, now: dt.datetime
                        ) -> tuple[dict[str, Any], bytes] | None:
    """When a resolved incident reopens: the METHOD:CANCEL of its review invitation, and
    the state to record; None when no invitation is standing."""
    sent = incident.review_invite
    if not sent or sent.get("cancelled"):
        return None
    start = dt.datetime.fromisoformat(sent["start"])
    sequence = sent.get("sequence", 0) + 1
    ics = review_invitation(
        uid=sent["uid"], start=start, end=start + REVIEW_LENGTH, now=now,
        summary=f"Postmortem review: {incident.ref(config.list.incident_prefix)} "
                f"{incident.title}",
        description="", organizer=("", sent["organizer"]), required=sent["attendees"],
        sequence=sequence, method="CANCEL")
    return {**sent, "sequence": sequence, "cancelled": True}, ics


def _name_of(rt: "Runtime", person: str) -> str:
    name, addr = parseaddr(person)
    if name:
        return name
    expert = rt.directory.expert_by_address(addr) if addr else None
    return expert.name if expert else addr


def _invitation_text(rt: "Runtime", incident: Incident, start: dt.datetime) -> str:
    tmpl = rt.composer.env.get_template("mail/reminder_postmortem.invite.txt")
    return tmpl.render(**rt.planner.mail_context(incident), start=start).strip()
