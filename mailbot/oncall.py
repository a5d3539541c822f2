"""Who is on call: per service, now and next (with the handover), and the weeks ahead.

Takes the ServiceDirectory and an instant; hands `OnCallEntry`s to `mailbot oncall` (text
or `--json`) and to the experts page. A service without a rotation has its experts with
role "on-call", always.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from mailbot.rotation import Shift
from mailbot.services import Expert, ServiceDirectory

WEEKS_SHOWN = 6  # shifts the experts page lists: the site is static, so it shows ahead


@dataclass(frozen=True)
class OnCallEntry:
    service: str
    people: tuple[Expert, ...]  # on call at the instant asked about
    since: dt.datetime | None = None  # None: no rotation, always
    until: dt.datetime | None = None  # the next handover (or override edge)
    next: Expert | None = None  # who takes over at `until`
    override: bool = False  # `people` are on call through an override
    shifts: tuple[tuple[Shift, Expert | None], ...] = ()  # the coming ones, `now` first
    timezone: str = ""  # the rotation's zone, for showing handovers

    @property
    def tz(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    def to_json(self) -> dict[str, Any]:
        def person(e: Expert | None) -> dict[str, str] | None:
            return None if e is None else {"name": e.name, "address": e.address,
                                           "pager": e.pager}
        return {
            "service": self.service,
            "rotation": self.since is not None,
            "on_call": [person(e) for e in self.people],
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "next": person(self.next),
            "override": self.override,
            "timezone": self.timezone or None,
            "shifts": [{"person": person(e) or {"address": s.person}, "start":
                        s.start.isoformat(), "end": s.end.isoformat(), "override": s.override}
                       for s, e in self.shifts],
        }


def on_call_at(directory: ServiceDirectory, at: dt.datetime,
               names: Iterable[str] | None = None, weeks: int = 1) -> list[OnCallEntry]:
    """Who is on call for each service (or those `names`, canonical) at `at`, with the
    next `weeks` shifts of each rotation."""
    wanted = None if names is None else {directory.resolve(n) for n in names}
    out = []
    for service in directory:
        if wanted is not None and service.name not in wanted:
            continue
        rotation = service.rotation
        if rotation is None:
            out.append(OnCallEntry(service.name, directory.on_call_people(service.name, at)))
            continue
        shifts = rotation.shifts(at, max(weeks, 2))
        now, nxt = shifts[0], shifts[1]
        expert = directory.expert_by_address
        out.append(OnCallEntry(
            service.name, tuple(e for e in [expert(now.person)] if e),
            since=now.start, until=now.end, next=expert(nxt.person), override=now.override,
            shifts=tuple((s, expert(s.person)) for s in shifts[:max(weeks, 1)]),
            timezone=rotation.tz.key))
    return out
