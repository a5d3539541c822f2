"""The scheduler: jobs that each declare their own schedule, run when due.

Takes the Runtime, its jobs and the time; hands each due job its slot. The jobs come from
where everything is built (`runtime.build_scheduler`: digest.py, reminders.py, actions.py,
weekly.py), and each commits its mail through the store like a message would; this
module imports none of them. Two kinds of schedule:

    DailyAt(time, tz)  one slot per local day, keyed `job:<name>:<local date>`. The slot's
                       key is committed with the job's mail, so `store.is_processed(key)`
                       says it ran: a restart neither repeats it nor (while the day lasts)
                       skips it. Only today's slot is ever run: no backlog after downtime.
    Every(interval)    a sweep (reminders). It keeps no slot record: what it sends is keyed
                       by the incident state it acts on, so a repeated sweep is harmless.

A daily slot due before the store's first scheduler run was not missed (mailbot was not
there yet): the first `serve` of a new install after digest_time does not mail the list
at once, its first digest is tomorrow's. The first run's time is kept in the store
(`job:scheduler:since`). A store that held incidents before that record existed starts
from its first live incident's declaration (from the beginning if all are closed), so a
store upgraded with older history still runs its real misses late, while a new install
whose first message came through `ingest` after digest_time does not.

Local times are resolved with zoneinfo: a wall time that does not exist on a
spring-forward day runs at the first valid instant after the gap; an ambiguous one on a
fall-back day runs once, at its first occurrence.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol
from zoneinfo import ZoneInfo

from mailbot.effects import commit_effects

if TYPE_CHECKING:
    from mailbot.runtime import Runtime

log = logging.getLogger(__name__)

UTC = dt.timezone.utc
SINCE_KEY = "job:scheduler:since"


@dataclass(frozen=True)
class Slot:
    """One due run of a job: its store key and the instant it became due (UTC)."""

    key: str
    due: dt.datetime


class Schedule(Protocol):
    @property
    def persistent(self) -> bool:
        """True: the slot key is committed, and a committed slot is done."""

    def slot_at(self, name: str, now: dt.datetime) -> Slot | None:
        """The slot that is due at `now`, if any."""

    def next_due(self, now: dt.datetime) -> dt.datetime:
        """The next instant after `now` at which a new slot becomes due."""


def local_instant(day: dt.date, at: dt.time, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant of wall time `at` on local `day`: DST gaps move forward to the end
    of the gap, DST overlaps take the first occurrence."""
    wall = dt.datetime.combine(day, at.replace(tzinfo=None, fold=0))
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first  # exists (fold=0 is the first of two in an overlap)
    # In a gap, PEP 495 maps fold=0 with the offset from before the transition (too late)
    # and fold=1 with the one after it (too early); the transition lies between them.
    lo = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    if lo > hi:
        lo, hi = hi, lo
    while hi - lo > dt.timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


@dataclass(frozen=True)
class DailyAt:
    """Once per local day at `at` in `tz`."""

    at: dt.time
    tz: ZoneInfo
    persistent: bool = True

    def instant(self, day: dt.date) -> dt.datetime:
        return local_instant(day, self.at, self.tz)

    def slot_at(self, name: str, now: dt.datetime) -> Slot | None:
        today = now.astimezone(self.tz).date()
        due = self.instant(today)
        if now < due:
            return None  # yesterday's slot is never run late: no backlog
        return Slot(f"job:{name}:{today.isoformat()}", due)

    def next_due(self, now: dt.datetime) -> dt.datetime:
        today = now.astimezone(self.tz).date()
        for offset in range(0, 3):
            due = self.instant(today + dt.timedelta(days=offset))
            if due > now:
                return due
        return now + dt.timedelta(days=1)  # unreachable for real zones


@dataclass(frozen=True)
class Every:
    """A sweep every `interval`, aligned to the epoch (UTC)."""

    interval: dt.timedelta
    persistent: bool = False

    def _floor(self, now: dt.datetime) -> dt.datetime:
        epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
        return epoch + ((now - epoch) // self.interval) * self.interval

    def slot_at(self, name: str, now: dt.datetime) -> Slot | None:
        start = self._floor(now)
        return Slot(f"job:{name}:{start.isoformat()}", start)

    def next_due(self, now: dt.datetime) -> dt.datetime:
        return self._floor(now) + self.interval


@dataclass(frozen=True)
class Job:
    """A named piece of scheduled work: `run(rt, slot, now)` does it and commits."""

    name: str
    schedule: Schedule
    run: Callable[["Runtime", Slot, dt.datetime], object]  # what it returns is not used


@dataclass
class Scheduler:
    """Runs each job once per due slot. `run_due` is the whole policy; `run` just ticks."""

    rt: "Runtime"
    jobs: list[Job]
    max_wait: float = 60.0
    _swept: dict[str, str] = field(default_factory=dict)  # non-persistent: last slot run
    _since: dt.datetime | None = None  # the store's first scheduler run

    def running_since(self, now: dt.datetime) -> dt.datetime:
        """When this store first ran the scheduler (recorded at the first call)."""
        if self._since is None:
            record = self.rt.store.message_record(SINCE_KEY) or {}
            if record.get("since"):
                self._since = dt.datetime.fromisoformat(record["since"])
            else:
                since = self._history_began(now)
                with self.rt.pipeline.lock:
                    commit_effects(self.rt.store, self.rt.outbox, SINCE_KEY,
                                   index={SINCE_KEY: {"since": since.isoformat()}})
                self._since = since
        return self._since

    def _history_began(self, now: dt.datetime) -> dt.datetime:
        """Where a store without the record starts counting: an empty store now; one that
        holds live incidents at the first declaration among them, so a new install whose
        first message came through `ingest` after digest_time sends no digest at once,
        while a store upgraded with older history still gets the one it missed; one with
        only closed incidents (an upgrade) from the beginning."""
        store = self.rt.store
        if store.allocate_id() == 1:  # never held an incident
            return now
        declared = [i.declared_at for i in store.live_incidents() if i.declared_at]
        if declared:
            return min(d if d.tzinfo else d.replace(tzinfo=UTC) for d in declared)
        return dt.datetime.min.replace(tzinfo=UTC)

    def run_due(self, now: dt.datetime | None = None) -> list[str]:
        """Run every job whose slot is due at `now` and not yet done; return their keys."""
        now = now or self.rt.clock.now()
        since = self.running_since(now)
        ran = []
        for job in self.jobs:
            slot = job.schedule.slot_at(job.name, now)
            if slot is None:
                continue
            if job.schedule.persistent:
                if slot.due < since:
                    continue  # due before mailbot was there: nothing was missed
                if self.rt.store.is_processed(slot.key):
                    continue
            elif self._swept.get(job.name) == slot.key:
                continue
            try:
                # The pipeline's lock: a job's read-modify-write of incidents never
                # interleaves with a message being processed.
                with self.rt.pipeline.lock:
                    job.run(self.rt, slot, now)
            except Exception:
                log.exception("job %s (%s) failed; it will be tried again", job.name, slot.key)
                continue
            if not job.schedule.persistent:
                self._swept[job.name] = slot.key
            ran.append(slot.key)
        return ran

    def seconds_to_next(self, now: dt.datetime) -> float:
        nearest = min((job.schedule.next_due(now) for job in self.jobs),
                      default=now + dt.timedelta(seconds=self.max_wait))
        return max(0.5, min(self.max_wait, (nearest - now).total_seconds()))

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set. A slot missed while mailbot was down runs at once."""
        log.info("scheduler: %s", ", ".join(j.name for j in self.jobs))
        while not stop.is_set():
            now = self.rt.clock.now()
            try:
                self.run_due(now)
            except OSError as exc:  # disk trouble: try again at the next tick
                log.error("scheduler: %s", exc)
            stop.wait(self.seconds_to_next(self.rt.clock.now()))

