"""The figures leadership reads: incidents by severity and service, time to resolve,
customer-facing incidents, postmortems overdue, action items done and overdue, quarterly
items added; and the two charts of the metrics page, as inline SVG.

Takes incidents (streamed once: each leaves a small `IncidentFacts` row) and "now"; hands
on `Figures` for any period. The weekly summary mail (weekly.py) and the site's
metrics page (publish.py) both ask here, so they never disagree. Durations run from
`Started-At:` (else the declaration) to `Resolved-At:` (else the resolving update).
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

from mailbot.config import Config
from mailbot.models import Incident
from mailbot.timing import aware, review_start, severity_rank

WEEKS_CHARTED = 8


@dataclass(frozen=True)
class IncidentFacts:
    """What the figures need of one incident."""

    ref: str
    severity: str
    services: tuple[str, ...]
    declared_at: dt.datetime
    resolved_at: dt.datetime | None
    duration: dt.timedelta | None  # began -> resolved, when resolved
    customer_facing: bool
    postmortem_due_by: dt.datetime | None  # resolved and no postmortem accepted yet
    reviewed_at: dt.datetime | None
    items_done: tuple[dt.datetime, ...]  # when each action item was marked done
    items_open_due: tuple[dt.date, ...]  # due dates of the items not done
    quarterly_added: tuple[dt.datetime, ...]  # the postmortem's acceptance, per item


@dataclass(frozen=True)
class Figures:
    """The figures of one period [start, end), counted at `now`."""

    start: dt.datetime
    end: dt.datetime
    declared: int
    by_severity: tuple[tuple[str, int], ...]
    by_service: tuple[tuple[str, int], ...]
    resolved: int
    resolve_median: dt.timedelta | None
    resolve_worst: dt.timedelta | None
    resolve_worst_ref: str
    resolve_by_severity: tuple[tuple[str, dt.timedelta, dt.timedelta, int], ...]
    customer_facing: int
    postmortems_overdue: int
    reviews: int
    items_done: int
    items_overdue: int
    quarterly_added: int


def facts_of(config: Config, incident: Incident) -> IncidentFacts | None:
    """The incident's row, or None when it has no declaration time (a damaged record)."""
    if incident.declared_at is None:
        return None
    declared = aware(incident.declared_at)
    resolved = aware(incident.resolved_at) if incident.status != "open" and \
        incident.resolved_at else None
    duration = None
    if resolved is not None:
        duration = max(resolved - aware(incident.began_at or declared), dt.timedelta(0))
    pm = incident.postmortem
    due_by = None
    if incident.status == "resolved" and pm is None:
        due_by = review_start(config, incident)
    return IncidentFacts(
        ref=incident.ref(config.list.incident_prefix),
        severity=incident.severity or "",
        services=tuple(incident.services),
        declared_at=declared,
        resolved_at=resolved,
        duration=duration,
        customer_facing=bool(incident.customer_impact),
        postmortem_due_by=due_by,
        reviewed_at=aware(pm.reviewed_at) if pm and pm.reviewed_at else None,
        items_done=tuple(aware(a.done_at) for a in pm.action_items if a.done_at) if pm else (),
        items_open_due=tuple(a.due for a in pm.action_items
                             if a.done_at is None and a.due) if pm else (),
        quarterly_added=(aware(pm.accepted_at),) * len(pm.quarterly) if pm else (),
    )


def _within(when: dt.datetime | None, start: dt.datetime, end: dt.datetime) -> bool:
    return when is not None and start <= when < end


def figures_for(config: Config, rows: list[IncidentFacts], start: dt.datetime,
                end: dt.datetime, now: dt.datetime) -> Figures:
    """The period's figures; "overdue" counts are as of `now`."""
    today = now.astimezone(config.schedule.tz).date()
    declared = [r for r in rows if _within(r.declared_at, start, end)]
    sev_counts: dict[str, int] = {}
    svc_counts: dict[str, int] = {}
    for r in declared:
        sev_counts[r.severity] = sev_counts.get(r.severity, 0) + 1
        for s in r.services or ("",):
            svc_counts[s] = svc_counts.get(s, 0) + 1
    resolved = [r for r in rows if _within(r.resolved_at, start, end) and r.duration is not None]
    durations = [r.duration for r in resolved if r.duration is not None]
    worst = max(resolved, key=lambda r: r.duration or dt.timedelta(0), default=None)
    per_sev: dict[str, list[dt.timedelta]] = {}
    for r in resolved:
        assert r.duration is not None
        per_sev.setdefault(r.severity, []).append(r.duration)
    rank = lambda name: (severity_rank(config, name or None), name)  # noqa: E731
    return Figures(
        start=start, end=end,
        declared=len(declared),
        by_severity=tuple(sorted(sev_counts.items(), key=lambda kv: rank(kv[0]))),
        by_service=tuple(sorted(svc_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        resolved=len(resolved),
        resolve_median=_median(durations),
        resolve_worst=worst.duration if worst else None,
        resolve_worst_ref=worst.ref if worst else "",
        resolve_by_severity=tuple(
            (sev, _median(ds) or dt.timedelta(0), max(ds), len(ds))
            for sev, ds in sorted(per_sev.items(), key=lambda kv: rank(kv[0]))),
        customer_facing=sum(1 for r in declared if r.customer_facing),
        postmortems_overdue=sum(1 for r in rows
                                if r.postmortem_due_by is not None and r.postmortem_due_by < now),
        reviews=sum(1 for r in rows if _within(r.reviewed_at, start, end)),
        items_done=sum(1 for r in rows for d in r.items_done if _within(d, start, end)),
        items_overdue=sum(1 for r in rows for d in r.items_open_due if d < today),
        quarterly_added=sum(1 for r in rows for d in r.quarterly_added if _within(d, start, end)),
    )


def _median(values: list[dt.timedelta]) -> dt.timedelta | None:
    if not values:
        return None
    return dt.timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def week_start(config: Config, when: dt.datetime) -> dt.datetime:
    """Monday 00:00 local of the week holding `when`."""
    tz = config.schedule.tz
    day = when.astimezone(tz).date()
    monday = day - dt.timedelta(days=day.weekday())
    return dt.datetime.combine(monday, dt.time(0), tzinfo=tz)


@dataclass
class MetricsBoard:
    """Rows gathered while the site streams through the incidents; the page's figures
    (the last full week and the last WEEKS_CHARTED weeks) and charts."""

    config: Config
    now: dt.datetime
    rows: list[IncidentFacts] = field(default_factory=list)

    def add(self, incident: Incident) -> None:
        row = facts_of(self.config, incident)
        if row is not None:
            self.rows.append(row)

    def weeks(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """The last WEEKS_CHARTED weeks, oldest first, the current one last."""
        this = week_start(self.config, self.now)
        starts = [this - dt.timedelta(weeks=n) for n in range(WEEKS_CHARTED - 1, -1, -1)]
        return [(s, s + dt.timedelta(weeks=1)) for s in starts]

    def last_week(self) -> Figures:
        end = week_start(self.config, self.now)
        return figures_for(self.config, self.rows, end - dt.timedelta(weeks=1), end, self.now)

    def period(self) -> Figures:
        weeks = self.weeks()
        return figures_for(self.config, self.rows, weeks[0][0], weeks[-1][1], self.now)

    def weekly(self) -> list[Figures]:
        return [figures_for(self.config, self.rows, s, e, self.now) for s, e in self.weeks()]

    def per_week_chart(self) -> "Chart":
        return incidents_per_week_chart(self)

    def resolve_chart(self) -> "Chart":
        return resolve_time_chart(self)

    def severities(self) -> list[str]:
        names = [s.name for s in self.config.severities]
        extra = sorted({r.severity for r in self.rows} - set(names))
        return names + extra


# ---------------------------------------------------------------- charts (inline SVG)

PALETTE = ("#b42318", "#dc6803", "#ca8504", "#1570ef", "#667085", "#98a2b3")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True)
class Chart:
    """An SVG chart as data: bars, axis labels and a legend; the template draws it."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    x_labels: tuple[tuple[float, str], ...]
    y_labels: tuple[tuple[float, str], ...]
    legend: tuple[tuple[str, str], ...]


def incidents_per_week_chart(board: MetricsBoard) -> Chart:
    """Stacked bars: incidents declared per week, by severity."""
    weeks = board.weekly()
    sevs = board.severities()
    colors = {s: PALETTE[min(i, len(PALETTE) - 1)] for i, s in enumerate(sevs)}
    width, height, left, bottom, top = 640, 240, 40, 30, 10
    most = max([w.declared for w in weeks] + [1])
    scale = (height - bottom - top) / most
    slot = (width - left) / len(weeks)
    bars: list[Bar] = []
    x_labels = []
    for n, w in enumerate(weeks):
        x = left + n * slot + slot * 0.15
        y: float = height - bottom
        counts = dict(w.by_severity)
        for sev in sevs:
            c = counts.get(sev, 0)
            if c:
                h = c * scale
                y -= h
                bars.append(Bar(x, y, slot * 0.7, h, colors[sev],
                                f"week of {w.start.date().isoformat()}: "
                                f"{c} {sev or 'no severity'}"))
        x_labels.append((left + n * slot + slot / 2, w.start.strftime("%d %b")))
    step = max(1, -(-most // 4))
    y_labels = tuple((height - bottom - v * scale, str(v)) for v in range(0, most + 1, step))
    return Chart(width, height, tuple(bars), tuple(x_labels), y_labels,
                 tuple((s or "no severity", colors[s]) for s in sevs))


def resolve_time_chart(board: MetricsBoard) -> Chart:
    """Per severity: median (solid) and worst (pale) time to resolve, in hours."""
    fig = board.period()
    sevs = [row for row in fig.resolve_by_severity]
    width, height, left, bottom, top = 640, 240, 40, 30, 10
    worst_h = max([w.total_seconds() / 3600 for _, _, w, _ in sevs] + [1.0])
    scale = (height - bottom - top) / worst_h
    slot = (width - left) / max(len(sevs), 1)
    bars: list[Bar] = []
    x_labels = []
    for n, (sev, median, worst, count) in enumerate(sevs):
        x = left + n * slot + slot * 0.2
        for k, (value, color, what) in enumerate(((worst, "#d0d5dd", "worst"),
                                                  (median, "#1570ef", "median"))):
            hours = value.total_seconds() / 3600
            h = hours * scale
            w = slot * (0.6 if k == 0 else 0.3)
            bars.append(Bar(x + (0 if k == 0 else slot * 0.15), height - bottom - h, w, h,
                            color, f"{sev or 'no severity'} {what}: {hours:.1f} h "
                                   f"({count} resolved)"))
        x_labels.append((left + n * slot + slot / 2, sev or "none"))
    step = max(1, -(-int(worst_h) // 4))
    y_labels = tuple((height - bottom - v * scale, f"{v} h")
                     for v in range(0, int(worst_h) + 1, step))
    return Chart(width, height, tuple(bars), tuple(x_labels), y_labels,
                 (("median", "#1570ef"), ("worst", "#d0d5dd")))
