"""Action-item reminders: each item's owner hears on the day it falls due, and once more
when it is overdue, until `[DONE] [INC-n]` with `Done: A1` marks it done.

Takes the incidents that have action items (live ones, and the closed ones the store keeps
summaries of while their items may still be owed, see `Store.recently_closed`) and the
time; sends at [schedule] digest_time local, so nobody is mailed at midnight. Each
reminder is one commit keyed `job:action-item:<id>:<A n>:<due|overdue>`, which records
it on the item: a sweep repeated after a crash sends nothing twice.

`ItemBoard` gathers every incident's items for the site's action-items page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from mailbot.config import Config
from mailbot.jobmail import commit_about, compose_about, mailable, within_cap
from mailbot.models import ActionItem, Incident
from mailbot.scheduler import Every, Job, Slot

if TYPE_CHECKING:
    from mailbot.runtime import Runtime

log = logging.getLogger(__name__)

SWEEP = dt.timedelta(minutes=1)


def action_item_jobs(config: Config) -> list[Job]:
    """A sweep every minute; each reminder goes at the first sweep at or after
    [schedule] digest_time on its day."""
    return [Job("action-items", Every(SWEEP), send_action_item_reminders)]


def reminder_due(config: Config, item: ActionItem, now: dt.datetime) -> str | None:
    """"due", "overdue" or None: the reminder `item`'s owner is owed at `now`."""
    if item.done_at is not None or item.due is None or not item.number:
        return None
    local = now.astimezone(config.schedule.tz)
    if local.time() < config.schedule.digest_time:
        return None
    today = local.date()
    if today > item.due and "overdue" not in item.reminded:
        return "overdue"
    if today == item.due and "due" not in item.reminded:
        return "due"
    return None


def incidents_with_items(rt: "Runtime") -> Iterator[Incident]:
    """Live incidents with a postmortem, then recently closed ones with open items."""
    live = rt.store.live_incidents()
    seen = set()
    for incident in live:
        seen.add(incident.id)
        if incident.postmortem is not None:
            yield incident
    for summary in rt.store.recently_closed():
        if summary["id"] not in seen and summary.get("items"):
            closed = rt.store.get(summary["id"])
            if closed is not None and closed.postmortem is not None:
                yield closed


def send_action_item_reminders(rt: "Runtime", slot: Slot, now: dt.datetime) -> int:
    """One sweep; returns how many reminders were queued."""
    sent = 0
    for incident in incidents_with_items(rt):
        assert incident.postmortem is not None
        for item in incident.postmortem.action_items:
            kind = reminder_due(rt.config, item, now)
            if kind is None:
                continue
            key = f"job:action-item:{incident.id}:{item.label}:{kind}"
            if rt.store.is_processed(key):
                continue
            to = mailable(rt, incident, f"owner of {item.label}", [item.owner])
            if not to:
                continue
            mail = compose_about(rt, incident, "reminder_action_item", key, to=to, now=now,
                                  item=item, overdue=kind == "overdue")
            if not within_cap(rt, mail, now):
                continue
            # Reminded once for "overdue" also covers "due": a late sweep sends one mail.
            reminded = (*item.reminded, kind) if kind == "due" else \
                (*item.reminded, "due", "overdue")
            items = tuple(dataclasses.replace(a, reminded=tuple(dict.fromkeys(reminded)))
                          if a.label == item.label else a
                          for a in incident.postmortem.action_items)
            incident = dataclasses.replace(
                incident, postmortem=dataclasses.replace(incident.postmortem,
                                                         action_items=items))
            commit_about(rt, key, incident, mail, now)
            log.info("%s: action item %s %s reminder <%s> to %s",
                     incident.ref(rt.config.list.incident_prefix), item.label, kind,
                     mail.message_id, ", ".join(mail.recipients))
            sent += 1
    return sent


# ---------------------------------------------------------------- the site's list


@dataclass(frozen=True)
class ItemRow:
    """One action item (or quarterly-planning item) on the site's action-items page."""

    ref: str
    title: str
    label: str
    text: str
    owner: str | None
    due: dt.date | None
    state: str  # open | due | overdue | done | quarterly
    done_at: dt.datetime | None = None


DONE_SHOWN = 200  # the most recently done items on the page; the rest are on their incidents


@dataclass
class ItemBoard:
    """Every incident's items, gathered while the site streams through the incidents."""

    today: dt.date
    prefix: str
    rows: list[ItemRow] = field(default_factory=list)

    def add(self, incident: Incident) -> None:
        pm = incident.postmortem
        if pm is None:
            return
        ref = incident.ref(self.prefix)
        for a in pm.action_items:
            self.rows.append(ItemRow(ref, incident.title, a.label, a.text, a.owner, a.due,
                                     a.state(self.today), a.done_at))
        for a in pm.quarterly:
            self.rows.append(ItemRow(ref, incident.title, "", a.text, a.owner, a.due,
                                     "quarterly"))

    def of(self, *states: str) -> list[ItemRow]:
        rows = [r for r in self.rows if r.state in states]
        if states == ("done",):
            done = sorted(rows, key=lambda r: r.done_at or dt.datetime.min, reverse=True)
            return done[:DONE_SHOWN]
        return sorted(rows, key=lambda r: (r.due or dt.date.max, r.ref, r.label))
