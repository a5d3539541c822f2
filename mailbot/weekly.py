"""The weekly summary to leadership: last week's figures (metrics.py), on
[postmortem] weekly_summary_day at weekly_summary_time local, to [postmortem] leadership.

Takes every incident (live and closed: read once a week, so the cost of reading the
closed files is paid weekly, not per message) and the time; commits the mail under the
slot key `job:weekly-summary:<Monday of the week>`, so it goes once per week.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from mailbot.compose import mail_name
from mailbot.config import Config
from mailbot.effects import commit_effects
from mailbot.metrics import Figures, MetricsBoard
from mailbot.models import OutgoingMail
from mailbot.scheduler import Job, Slot, local_instant

if TYPE_CHECKING:
    from mailbot.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeeklyAt:
    """Once a week: local weekday `weekday` (0 = Monday) at `at` in `tz`."""

    weekday: int
    at: dt.time
    tz: ZoneInfo
    persistent: bool = True

    def _instant(self, now: dt.datetime, weeks_ahead: int = 0) -> dt.datetime:
        today = now.astimezone(self.tz).date()
        day = today - dt.timedelta(days=(today.weekday() - self.weekday) % 7)
        return local_instant(day + dt.timedelta(weeks=weeks_ahead), self.at, self.tz)

    def slot_at(self, name: str, now: dt.datetime) -> Slot | None:
        due = self._instant(now)
        if now < due:
            return None
        return Slot(f"job:{name}:{due.astimezone(self.tz).date().isoformat()}", due)

    def next_due(self, now: dt.datetime) -> dt.datetime:
        due = self._instant(now)
        return due if due > now else self._instant(now, 1)


def weekly_jobs(config: Config) -> list[Job]:
    """The weekly summary's schedule, when a day is configured and leadership named."""
    pm = config.postmortem
    if pm.weekly_summary_day is None or not pm.leadership:
        return []
    return [Job("weekly-summary", WeeklyAt(pm.weekly_summary_day, pm.weekly_summary_time,
                                           config.schedule.tz), send_weekly_summary)]


def collect_figures(rt: "Runtime", now: dt.datetime) -> tuple[Figures, MetricsBoard]:
    """Last week's figures (Monday to Monday, local), counted at `now`."""
    board = MetricsBoard(rt.config, now)
    for incident in rt.store.all_incidents():
        board.add(incident)
    return board.last_week(), board


def compose_weekly(rt: "Runtime", figures: Figures, key: str, now: dt.datetime) -> OutgoingMail:
    config = rt.config
    base = config.publish.url.rstrip("/")
    return rt.composer.compose(
        "weekly_summary", name=mail_name(key, "weekly_summary"),
        to=list(config.postmortem.leadership), now=now, auto_submitted="auto-generated",
        f=figures, tz=config.schedule.tz, list_name=config.list.name,
        list_address=config.list.address, severities=config.severities,
        metrics_url=f"{base}/metrics.html" if base else "")


def send_weekly_summary(rt: "Runtime", slot: Slot, now: dt.datetime) -> OutgoingMail | None:
    figures, _ = collect_figures(rt, now)
    mail = compose_weekly(rt, figures, slot.key, now)
    outgoing = [mail] if mail.recipients else []
    index = {m.message_id: {"own": True} for m in outgoing}
    commit_effects(rt.store, rt.outbox, slot.key, outgoing=outgoing, index=index, now=now)
    log.info("%s: weekly summary <%s> to %s", slot.key, mail.message_id,
             ", ".join(mail.recipients) or "nobody")
    return outgoing[0] if outgoing else None
