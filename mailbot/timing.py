"""The incident-timing policy: when an incident is stale, how severities rank, when its
postmortem review falls.

The digest, the reminders, the board and the status reply all ask here, so they never
disagree about an incident (one threshold, one comparison, one ranking)."""

from __future__ import annotations

import datetime as dt

from mailbot.config import Config
from mailbot.models import Incident
from mailbot.scheduler import local_instant

REVIEW_TIME = dt.time(14, 0)  # local time proposed for the postmortem review


def stale_after(config: Config, severity: str | None) -> dt.timedelta:
    """How long an open incident may go without an accepted update.

    Without a known severity the strictest level's interval applies: nobody has said how
    bad it is yet, so it is chased as if it were the worst until somebody does."""
    sev = config.severity(severity) if severity else None
    minutes = (sev.stale_after_minutes if sev is not None
               else min(s.stale_after_minutes for s in config.severities))
    return dt.timedelta(minutes=minutes)


def last_update(incident: Incident) -> dt.datetime | None:
    """The last accepted update, or the declaration when there was none."""
    return incident.updated_at or incident.declared_at


def is_stale(config: Config, incident: Incident, now: dt.datetime) -> bool:
    """Open, and no accepted update for `stale_after` (reached at the instant it elapses,
    the same instant the stale reminder falls due)."""
    last = last_update(incident)
    if incident.status != "open" or last is None:
        return False
    return now - aware(last) >= stale_after(config, incident.severity)


def severity_rank(config: Config, name: str | None) -> int:
    """Configured levels by their rank (1 is the most severe); a name that is not
    configured sorts after them, and no severity at all last."""
    sev = config.severity(name) if name else None
    if sev is not None:
        return sev.rank
    return len(config.severities) + (1 if name else 2)


def review_start(config: Config, incident: Incident) -> dt.datetime | None:
    """The proposed postmortem review, which is also when the postmortem is due:
    `review_after_days` after resolution, at REVIEW_TIME local, moved to Monday when
    that is a weekend (the reminder's invitation and the digest's "due by" agree)."""
    if incident.resolved_at is None:
        return None
    tz = config.schedule.tz
    day = incident.resolved_at.astimezone(tz).date() + dt.timedelta(
        days=config.postmortem.review_after_days)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return local_instant(day, REVIEW_TIME, tz)


def aware(when: dt.datetime) -> dt.datetime:
    """Stored times are aware UTC; a naive one (an old record) is taken to be UTC too."""
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)
