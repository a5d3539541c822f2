"""Reminders: stale-update nudges to commanders, postmortem nudges to owners.

Takes the live incidents and the time (a sweep every minute, see `reminder_jobs`); hands
each reminder, with the incident's new reminder state, to the store in one commit, then to
the outbox. Each commit is keyed by the incident state that made it due
(`job:reminder-stale:<id>:<due instant>`, `job:reminder-postmortem:<id>:<resolved>:<n>`),
so a sweep repeated after a crash finds it done and sends nothing twice.

    stale-update  an open incident with no accepted update for its severity's
                  `stale_after_minutes`: to the commander (and the list when
                  [schedule] reminders_cc_list), at most once per interval, with the
                  pre-filled update block. An accepted update resets the clock. For
                  [schedule] quiet_severities it waits out [schedule] quiet_hours; after
                  `escalate_after_reminders` unanswered ones, it goes to the list.
    postmortem    a resolved incident without an accepted postmortem: at the first sweep
                  after resolution, then every [postmortem] reminder_days; to the
                  postmortem owner and the commander, leadership in Cc for
                  `leadership_severities`; carries the template and a review invitation
                  (review.py).
    pages         an unanswered page (paging.py) goes to the next in the rotation, then
                  the owners, after [oncall] escalate_after_minutes.
    directory     a services.toml entry `reviewed` more than [oncall] review_after_days
                  ago: to the service's owners, then every REVIEW_REPEAT_DAYS until its
                  date is updated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from mailbot import paging
from mailbot.compose import mail_name
from mailbot.config import Config
from mailbot.effects import commit_effects
from mailbot.jobmail import commit_about, compose_about, mailable, within_cap
from mailbot.models import Incident, TimelineEntry
from mailbot.review import review_invite
from mailbot.scheduler import Every, Job, Slot, local_instant
from mailbot.timing import last_update, stale_after

if TYPE_CHECKING:
    from mailbot.runtime import Runtime
    from mailbot.services import Service

log = logging.getLogger(__name__)

SWEEP = dt.timedelta(minutes=1)


def reminder_jobs(config: Config) -> list[Job]:
    """The reminders' own schedule: a sweep every minute."""
    return [Job("reminders", Every(SWEEP), send_reminders)]


def send_reminders(rt: "Runtime", slot: Slot, now: dt.datetime) -> int:
    """One sweep over the live incidents; returns how many reminders were queued."""
    sent = 0
    for incident in rt.store.live_incidents():
        if incident.status == "open":
            sent += send_stale_reminder(rt, incident, now)
            if incident.pages:
                sent += paging.escalate_pages(rt, rt.store.get(incident.id) or incident, now)
        elif incident.status == "resolved":
            sent += send_postmortem_reminder(rt, incident, now)
    for service in rt.directory:
        sent += send_directory_review(rt, service, now)
    return sent


# ---------------------------------------------------------------- who and when


def quiet_until(config: Config, severity: str | None,
                instant: dt.datetime) -> dt.datetime | None:
    """The end of the quiet hours `instant` falls in when they apply to `severity`, else
    None. Never for an incident without a severity: nobody has said it can wait."""
    hours = config.schedule.quiet_hours
    if hours is None or not severity or severity not in config.schedule.quiet_severities:
        return None
    tz = config.schedule.tz
    local = instant.astimezone(tz)
    start, end = hours
    clock = local.time().replace(tzinfo=None, fold=0)
    if start < end:  # "01:00-06:00"
        inside, end_day = start <= clock < end, local.date()
    elif clock >= start:  # "22:00-07:00", before midnight
        inside, end_day = True, local.date() + dt.timedelta(days=1)
    else:  # after midnight
        inside, end_day = clock < end, local.date()
    return local_instant(end_day, end, tz) if inside else None


def missed_reminders(incident: Incident) -> int:
    """Stale reminders sent since the last accepted update: an update answers them all."""
    last = last_update(incident)
    if incident.last_reminder_at is None or last is None or incident.last_reminder_at <= last:
        return 0
    return incident.stale_reminders


def stale_due(config: Config, incident: Incident, now: dt.datetime) -> dt.datetime | None:
    """When the stale-update reminder became due, or None if it is not due at `now` (not
    yet, or quiet hours hold it back until they end)."""
    if incident.status != "open":
        return None
    base = last_update(incident)
    if base is None:
        return None
    if incident.last_reminder_at and incident.last_reminder_at > base:
        base = incident.last_reminder_at
    due = base + stale_after(config, incident.severity)
    if now < due or quiet_until(config, incident.severity, now) is not None:
        return None
    return due


def postmortem_due(config: Config, incident: Incident, now: dt.datetime) -> int | None:
    """The number (0-based) of the postmortem reminder due at `now`, or None."""
    if incident.status != "resolved" or incident.resolved_at is None:
        return None
    n = incident.postmortem_reminders
    days = config.postmortem.reminder_days
    if n > 0 and days <= 0:
        return None  # reminder_days = 0: only the one at resolution
    due = incident.resolved_at + dt.timedelta(days=max(days, 0)) * n
    return n if now >= due else None


# ---------------------------------------------------------------- the reminders' timeline


def _noted(incident: Incident, now: dt.datetime, author: str, note: str,
           **changes: Any) -> Incident:  # Any: values for fields of different types
    updated = dataclasses.replace(incident, timeline=list(incident.timeline), **changes)
    updated.timeline.append(TimelineEntry(kind="reminder", at=now, author=author, note=note))
    return updated


# ---------------------------------------------------------------- stale-update reminder


def send_stale_reminder(rt: "Runtime", incident: Incident, now: dt.datetime) -> int:
    """Remind the commander of an open incident that went quiet. Returns 1 if queued."""
    config = rt.config
    due = stale_due(config, incident, now)
    if due is None:
        return 0
    key = f"job:reminder-stale:{incident.id}:{due.isoformat()}"
    if rt.store.is_processed(key):
        return 0
    commander = mailable(rt, incident, "commander", [incident.commander])
    fallback = commander or mailable(rt, incident, "declarer", [incident.declared_by])
    missed = missed_reminders(incident)
    limit = config.schedule.escalate_after_reminders
    escalated = bool(limit) and missed >= limit
    if escalated:
        # The commander did not answer: the list hears it, so someone can take over.
        to, cc = [config.list.address], fallback
    else:
        to = fallback or [config.list.address]
        cc = [config.list.address] if config.schedule.reminders_cc_list else []
    cc = [a for a in cc if a not in to]
    mail = compose_about(
        rt, incident, "reminder_stale", key, to=to, cc=cc, now=now,
        quiet_for=now - (last_update(incident) or now),
        stale_after=stale_after(config, incident.severity),
        commander_is_address=bool(commander),
        escalated=escalated, missed=missed, escalate_after=limit,
    )
    if not within_cap(rt, mail, now):
        return 0
    note = ("stale-update reminder to " if not escalated else
            f"no update after {missed} reminders: told the list, ") + ", ".join(mail.recipients)
    updated = _noted(incident, now, config.list.bot_address, note, last_reminder_at=now,
                     stale_reminders=missed + 1)
    commit_about(rt, key, updated, mail, now)
    log.info("%s: stale-update reminder <%s> to %s", incident.ref(config.list.incident_prefix),
             mail.message_id, ", ".join(mail.recipients))
    return 1


# ---------------------------------------------------------------- postmortem reminder


def send_postmortem_reminder(rt: "Runtime", incident: Incident, now: dt.datetime) -> int:
    """Remind the postmortem owner and the commander. Returns 1 if queued."""
    config = rt.config
    n = postmortem_due(config, incident, now)
    if n is None:
        return 0
    assert incident.resolved_at is not None
    key = f"job:reminder-postmortem:{incident.id}:{incident.resolved_at.isoformat()}:{n}"
    if rt.store.is_processed(key):
        return 0
    owner = incident.postmortem_owner or incident.commander
    to = mailable(rt, incident, "postmortem owner or commander",
                   [owner, incident.commander]) \
        or mailable(rt, incident, "declarer", [incident.declared_by]) or [config.list.address]
    cc: list[str] = []
    if incident.severity in config.postmortem.leadership_severities:
        cc = [a for a in config.postmortem.leadership if a not in to]
    invite, start, ics = review_invite(rt, incident, now, owner, to, cc)
    attachments = []
    if ics is not None:
        attachments.append((f"review-{incident.ref(config.list.incident_prefix)}.ics",
                            "text/calendar; method=REQUEST; charset=UTF-8", ics))
    every = config.postmortem.reminder_days
    mail = compose_about(
        rt, incident, "reminder_postmortem", key, to=to, cc=cc, now=now,
        attachments=attachments,
        owner=owner,
        number=n + 1,
        reminder_days=every,
        review_start=start,
        review_invited=bool(start and start > now and invite and not invite.get("cancelled")),
        invitation_attached=bool(attachments),
        leadership=cc,
        horizon_days=config.postmortem.action_item_horizon_days,
    )
    if not within_cap(rt, mail, now):
        return 0
    if every > 0:
        sent = (now - incident.resolved_at) // dt.timedelta(days=every) + 1
    else:
        sent = n + 1
    updated = _noted(incident, now, config.list.bot_address,
                     f"postmortem reminder {n + 1} to " + ", ".join(mail.recipients),
                     postmortem_reminded_at=now, postmortem_reminders=max(sent, n + 1),
                     review_invite=invite)
    commit_about(rt, key, updated, mail, now)
    log.info("%s: postmortem reminder %d <%s> to %s",
             incident.ref(config.list.incident_prefix), n + 1, mail.message_id,
             ", ".join(mail.recipients))
    return 1


# ---------------------------------------------------------------- directory review


REVIEW_REPEAT_DAYS = 30  # while an entry stays unreviewed, its owners hear again this often


def review_overdue(config: Config, service: "Service", today: dt.date) -> int | None:
    """Days since `service`'s entry was reviewed, when that is more than [oncall]
    review_after_days; None when it is not (or has no `reviewed` date)."""
    limit = config.oncall.review_after_days
    if limit <= 0 or service.reviewed is None:
        return None
    age = (today - service.reviewed).days
    return age if age > limit else None


def send_directory_review(rt: "Runtime", service: "Service", now: dt.datetime) -> int:
    """Ask a service's owners to review its overdue directory entry. Returns 1 if queued."""
    config = rt.config
    today = now.astimezone(config.schedule.tz).date()
    age = review_overdue(config, service, today)
    if age is None:
        return 0
    n = (age - config.oncall.review_after_days - 1) // REVIEW_REPEAT_DAYS
    key = f"job:directory-review:{service.name}:{service.reviewed}:{n}"
    if rt.store.is_processed(key):
        return 0
    to = [e.address for e in service.owners if rt.composer.may_mail(e.address)]
    if not to:
        log.warning("services.toml [services.%s]: review overdue, but no owner to tell",
                    service.name)
        commit_effects(rt.store, rt.outbox, key, now=now)
        return 0
    mail = rt.composer.compose(
        "directory_review", name=mail_name(key, "directory_review"), to=to, now=now,
        auto_submitted="auto-generated", service=service, age=age, today=today,
        review_after_days=config.oncall.review_after_days, severities=config.severities,
        list_address=config.list.address)
    if not within_cap(rt, mail, now):
        return 0
    commit_effects(rt.store, rt.outbox, key, outgoing=[mail], now=now)
    log.info("services.toml [services.%s]: review reminder <%s> to %s", service.name,
             mail.message_id, ", ".join(mail.recipients))
    return 1
