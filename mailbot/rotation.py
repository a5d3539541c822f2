"""On-call rotations: who is on call for a service at an instant, and the shifts ahead.

Pure arithmetic on a `Rotation` read from `services.toml` (services.py validates it):
members take turns in order, each for `period_weeks` weeks, handing over on
`handover_day` at `handover_time` local time in `tz`; `start` is a handover date on which
the first member begins. Overrides (vacations, swaps) put one person on call between two
local instants; a later override wins where two overlap.

Handovers are wall-clock times: across a DST change the shift that spans it is an hour
longer or shorter, and a handover time that falls in a spring-forward gap happens at the
end of the gap (scheduler.local_instant, the same rule as the digest's).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator
from zoneinfo import ZoneInfo

from mailbot.scheduler import local_instant

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Override:
    """`person` is on call from `start` until `end` (aware instants; end exclusive)."""

    start: dt.datetime
    end: dt.datetime
    person: str


@dataclass(frozen=True)
class Rotation:
    members: tuple[str, ...]  # addresses, lower case, in turn order
    start: dt.date  # a handover date on which members[0] begins
    handover_day: int  # 0 = Monday
    handover_time: dt.time
    tz: ZoneInfo
    period_weeks: int = 1
    overrides: tuple[Override, ...] = ()

    @property
    def period(self) -> dt.timedelta:
        return dt.timedelta(weeks=self.period_weeks)

    def handover_at(self, day: dt.date) -> dt.datetime:
        """The instant (UTC) of the handover on local `day`."""
        return local_instant(day, self.handover_time, self.tz)

    def _turn(self, at: dt.datetime) -> tuple[int, dt.date]:
        """(the number of the regular shift under way at `at`, counted from `start`; the
        local date its handover fell on)."""
        local_day = at.astimezone(self.tz).date()
        days = self.period.days
        turn = (local_day - self.start).days // days
        day = self.start + dt.timedelta(days=turn * days)
        if at < self.handover_at(day):
            turn -= 1
            day -= self.period
        return turn, day

    def regular_at(self, at: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
        """(the member whose regular shift covers `at`, its start, its end)."""
        turn, day = self._turn(at)
        return (self.members[turn % len(self.members)], self.handover_at(day),
                self.handover_at(day + self.period))

    def override_at(self, at: dt.datetime) -> Override | None:
        for override in reversed(self.overrides):
            if override.start <= at < override.end:
                return override
        return None

    def person_at(self, at: dt.datetime) -> str:
        """Who is on call at `at`: an override's person, else the regular member."""
        override = self.override_at(at)
        return override.person if override else self.regular_at(at)[0]

    def shift_at(self, at: dt.datetime) -> "Shift":
        """The stretch of unchanged on-call around `at`: from the last change of person,
        or between a regular turn and an override, to the next one (a handover to the
        same person is not a change; an override of one's own next week is)."""
        who = self._who(at)
        _, start, end = self.regular_at(at)  # when nobody else ever takes over
        for boundary in self._boundaries_before(at):
            if self._who(boundary - dt.timedelta(seconds=1)) != who:
                start = boundary
                break
        for boundary in self._boundaries_after(at):
            if self._who(boundary) != who:
                end = boundary
                break
        return Shift(who[0], start, end, who[1])

    def _who(self, at: dt.datetime) -> tuple[str, bool]:
        """Who is on call at `at`, and whether by an override."""
        return self.person_at(at), self.override_at(at) is not None

    def shifts(self, since: dt.datetime, count: int) -> list["Shift"]:
        """The shift under way at `since` and the `count - 1` after it."""
        out = [self.shift_at(since)]
        while len(out) < count:
            out.append(self.shift_at(out[-1].end))
        return out

    def next_member(self, person: str) -> str | None:
        """The member after `person` in turn order (for escalation), or None when there is
        nobody else."""
        if person not in self.members:
            return self.members[0] if self.members[0] != person else None
        i = self.members.index(person)
        nxt = self.members[(i + 1) % len(self.members)]
        return nxt if nxt != person else None

    # Boundaries: every handover and every override edge, nearest first. A rotation where
    # nobody ever changes would loop forever; len(members) + overrides turns bound it.
    def _limit(self) -> int:
        return 2 * (len(self.members) + 2 * len(self.overrides)) + 2

    def _boundaries_after(self, at: dt.datetime) -> Iterator[dt.datetime]:
        _, day = self._turn(at)
        edges = sorted({e for o in self.overrides for e in (o.start, o.end) if e > at})
        handovers = (self.handover_at(day + self.period * k) for k in range(1, 10_000))
        yield from _merge(edges, handovers, self._limit(), after=True)

    def _boundaries_before(self, at: dt.datetime) -> Iterator[dt.datetime]:
        _, day = self._turn(at)
        edges = sorted({e for o in self.overrides for e in (o.start, o.end) if e <= at},
                       reverse=True)
        handovers = (self.handover_at(day - self.period * k) for k in range(0, 10_000))
        yield from _merge(edges, handovers, self._limit(), after=False)


@dataclass(frozen=True)
class Shift:
    person: str
    start: dt.datetime
    end: dt.datetime
    override: bool = False  # an override, not the regular turn


def _merge(edges: list[dt.datetime], handovers: Iterator[dt.datetime], limit: int,
           *, after: bool) -> Iterator[dt.datetime]:
    """Override edges and handovers in time order (forwards or backwards), each once;
    after `limit` handovers with no change the caller has its answer anyway."""
    pending = list(edges)
    seen = 0
    for handover in handovers:
        while pending and ((pending[0] < handover) if after else (pending[0] > handover)):
            yield pending.pop(0)
        if pending and pending[0] == handover:
            pending.pop(0)
        yield handover
        seen += 1
        if seen >= limit and not pending:
            return
