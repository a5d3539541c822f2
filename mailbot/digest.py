"""The daily digest: what the list should know each morning, in one mail.

Takes the store's live incidents, a small summary of recently closed incidents and their
action items (kept by the store as incidents close, see `sync_closed`), and the clock; hands a
`DigestView` to templates/mail/digest.txt and digest.html, and the rendered mail to the
store and outbox under the day's slot key `job:digest:<local date>`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from mailbot.compose import mail_name
from mailbot.config import Config
from mailbot.effects import commit_effects
from mailbot.models import Incident, OutgoingMail
from mailbot.scheduler import DailyAt, Job, Slot
from mailbot.store import retention
from mailbot.timing import is_stale, last_update, review_start

if TYPE_CHECKING:
    from mailbot.runtime import Runtime
    from mailbot.store import Store

log = logging.getLogger(__name__)

_RESOLVED_WINDOW = dt.timedelta(days=1)


# ---------------------------------------------------------------- the view


@dataclass(frozen=True)
class OpenRow:
    incident: Incident
    ref: str
    age: dt.timedelta
    since_update: dt.timedelta
    stale: bool
    needs_liaison: bool
    experts: Any  # services.Contacts: each person once, and the runbooks


@dataclass(frozen=True)
class SeverityGroup:
    name: str  # "SEV1", or "" for incidents without a severity
    description: str
    rows: tuple[OpenRow, ...]
    rank: int = 0  # 1 is the most severe; 0 for "not set"


@dataclass(frozen=True)
class ResolvedRow:
    ref: str
    title: str
    severity: str | None
    resolved_at: dt.datetime
    closed: bool


@dataclass(frozen=True)
class PostmortemRow:
    ref: str
    title: str
    severity: str | None
    owner: str | None
    resolved_at: dt.datetime
    due_by: dt.datetime
    overdue: bool


@dataclass(frozen=True)
class ActionRow:
    ref: str
    text: str
    owner: str | None
    due: dt.date
    overdue: bool
    label: str = ""  # A1, A2, ...: what `Done:` names


@dataclass(frozen=True)
class DigestView:
    now: dt.datetime
    day: dt.date  # the local date the digest is for
    groups: tuple[SeverityGroup, ...]
    resolved: tuple[ResolvedRow, ...]
    postmortems_due: tuple[PostmortemRow, ...]
    postmortems_overdue: tuple[PostmortemRow, ...]
    action_items: tuple[ActionRow, ...]
    open_count: int
    stale_count: int
    counts: dict[str, int] = field(default_factory=dict)  # severity -> open incidents

    @property
    def empty(self) -> bool:
        """Nothing to report at all."""
        return not (self.open_count or self.resolved or self.postmortems_due
                    or self.postmortems_overdue or self.action_items)


def build_digest(config: Config, now: dt.datetime, live: Iterable[Incident],
                 closed: dict[str, Any],
                 experts_for: Callable[[Iterable[str]], Any]) -> DigestView:
    """Everything the digest shows, from the live incidents and the closed summary."""
    tz = config.schedule.tz
    prefix = config.list.incident_prefix
    today = now.astimezone(tz).date()
    live = list(live)
    by_sev: dict[str, list[OpenRow]] = {}
    postmortems: list[PostmortemRow] = []
    resolved: list[ResolvedRow] = []
    for inc in live:
        if inc.status == "open":
            updated = last_update(inc) or now
            since = max(now - updated, dt.timedelta(0))
            row = OpenRow(
                incident=inc, ref=inc.ref(prefix),
                age=inc.duration(now) or dt.timedelta(0),
                since_update=since,
                stale=is_stale(config, inc, now),
                needs_liaison=inc.needs_liaison,
                experts=experts_for(inc.services) if inc.services else (),
            )
            key = inc.severity if inc.severity and config.severity(inc.severity) else ""
            by_sev.setdefault(key, []).append(row)
        elif inc.status == "resolved" and inc.resolved_at is not None:
            due_by = review_start(config, inc) or inc.resolved_at
            if inc.postmortem is None:  # accepted ones await their review, not a postmortem
                postmortems.append(PostmortemRow(
                    ref=inc.ref(prefix), title=inc.title, severity=inc.severity,
                    owner=inc.postmortem_owner or inc.commander, resolved_at=inc.resolved_at,
                    due_by=due_by, overdue=now > due_by))
            if now - inc.resolved_at <= _RESOLVED_WINDOW:
                resolved.append(ResolvedRow(inc.ref(prefix), inc.title, inc.severity,
                                            inc.resolved_at, closed=False))
    for c in closed.get("incidents", []):
        at = dt.datetime.fromisoformat(c["resolved_at"]) if c.get("resolved_at") else None
        if at is not None and dt.timedelta(0) <= now - at <= _RESOLVED_WINDOW:
            resolved.append(ResolvedRow(f"{prefix}-{c['id']}", c["title"], c.get("severity"),
                                        at, closed=True))
    groups = []
    for sev in config.severities:
        rows = by_sev.get(sev.name)
        if rows:
            groups.append(SeverityGroup(sev.name, sev.description,
                                        tuple(sorted(rows, key=lambda r: r.incident.id)),
                                        rank=sev.rank))
    if by_sev.get(""):
        groups.append(SeverityGroup("", "", tuple(sorted(by_sev[""],
                                                         key=lambda r: r.incident.id))))
    horizon = today + dt.timedelta(days=config.postmortem.action_item_horizon_days)
    actions = []
    items = [(item["incident"], item["text"], item.get("owner"),
              dt.date.fromisoformat(item["due"]), item.get("label", ""))
             for item in closed.get("items", [])]
    # A reopened incident keeps its accepted postmortem, and its action items are still
    # owed: they are read from the live incident, which has left the closed summaries.
    listed = {i[0] for i in items}
    for inc in live:
        if inc.postmortem is not None and inc.id not in listed:
            items.extend((inc.id, a.text, a.owner, a.due, a.label)
                         for a in inc.postmortem.action_items
                         if a.due is not None and a.done_at is None)
    for incident_id, text, owner, due, label in items:
        if today - retention.ITEM_OVERDUE_SHOWN <= due <= horizon:
            actions.append(ActionRow(f"{prefix}-{incident_id}", text, owner, due,
                                     overdue=due < today, label=label))
    rows_all = [r for g in groups for r in g.rows]
    return DigestView(
        now=now, day=today, groups=tuple(groups),
        resolved=tuple(sorted(resolved, key=lambda r: r.resolved_at)),
        postmortems_due=tuple(p for p in sorted(postmortems, key=lambda p: p.due_by)
                              if not p.overdue),
        postmortems_overdue=tuple(p for p in sorted(postmortems, key=lambda p: p.due_by)
                                  if p.overdue),
        action_items=tuple(sorted(actions, key=lambda a: (a.due, a.ref))),
        open_count=len(rows_all),
        stale_count=sum(1 for r in rows_all if r.stale),
        counts={g.name: len(g.rows) for g in groups},
    )


# ---------------------------------------------------------------- closed-incident summary


def sync_closed(store: "Store", now: dt.datetime) -> dict[str, Any]:
    """The recently closed incidents and their action items, as the digest shows them.

    The store keeps a summary of every closure in the commit that closes the incident
    (`Store.recently_closed`), so this reads no closed incident's file: its cost does not
    grow with history.
    """
    closed, items = [], []
    for c in store.recently_closed():
        if retention.is_closure_shown(dt.datetime.fromisoformat(c["closed_at"]), now):
            closed.append({k: c[k] for k in ("id", "title", "severity", "resolved_at",
                                             "closed_at")})
        for item in c.get("items", []):
            if retention.is_item_kept(dt.date.fromisoformat(item["due"]), now):
                items.append({"incident": c["id"], **item})
    return {"incidents": closed, "items": items}


# ---------------------------------------------------------------- the mail


def collect_digest(rt: "Runtime", now: dt.datetime) -> DigestView:
    """The digest as of `now`, from the store."""
    closed = sync_closed(rt.store, now)
    return build_digest(rt.config, now, rt.store.live_incidents(), closed,
                        rt.planner.experts_for)


def compose_digest(rt: "Runtime", view: DigestView, key: str) -> OutgoingMail:
    """The digest mail (text and HTML alternative) to the list."""
    config = rt.config
    return rt.composer.compose(
        "digest",
        name=mail_name(key, "digest"),
        to=[config.list.address],
        now=view.now,
        auto_submitted="auto-generated",
        view=view,
        prefix=config.list.incident_prefix,
        severities=config.severities,
        list_address=config.list.address,
        list_name=config.list.name,
        tz=config.schedule.tz,
        horizon_days=config.postmortem.action_item_horizon_days,
    )


def send_digest(rt: "Runtime", slot: Slot, now: dt.datetime) -> OutgoingMail | None:
    """Commit the day's digest under the slot key (no mail on an empty day when so
    configured); the slot counts as done either way."""
    view = collect_digest(rt, now)
    outgoing = []
    if view.empty and not rt.config.schedule.digest_when_empty:
        log.info("%s: nothing to report; no digest (digest_when_empty = false)", slot.key)
    else:
        outgoing.append(compose_digest(rt, view, slot.key))
    index = {m.message_id: {"own": True} for m in outgoing}
    commit_effects(rt.store, rt.outbox, slot.key, outgoing=outgoing, index=index, now=now)
    if outgoing:
        log.info("%s: digest <%s> queued: %d open, %d stale", slot.key,
                 outgoing[0].message_id, view.open_count, view.stale_count)
    return outgoing[0] if outgoing else None


def digest_job(config: Config) -> Job:
    """The digest's own schedule: daily at [schedule] digest_time in [schedule] timezone."""
    return Job("digest", DailyAt(config.schedule.digest_time, config.schedule.tz), send_digest)


def today_slot(config: Config, now: dt.datetime) -> Slot:
    """Today's digest slot, whether or not its time has come (for `digest --send`)."""
    schedule = DailyAt(config.schedule.digest_time, config.schedule.tz)
    day = now.astimezone(config.schedule.tz).date()
    return Slot(f"job:digest:{day.isoformat()}", schedule.instant(day))
