"""When jobs run: local digest time across DST changes, and exactly once across restarts."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from mailbot.scheduler import DailyAt, Every, local_instant

from tests.support.bot import utc

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("day, at, expected", [
    (dt.date(2026, 3, 28), dt.time(9, 0), utc(2026, 3, 28, 8, 0)),   # CET, UTC+1
    (dt.date(2026, 3, 29), dt.time(9, 0), utc(2026, 3, 29, 7, 0)),   # CEST from 02:00
    (dt.date(2026, 3, 29), dt.time(2, 30), utc(2026, 3, 29, 1, 0)),  # gap: 03:00 CEST
    (dt.date(2026, 3, 29), dt.time(2, 0), utc(2026, 3, 29, 1, 0)),   # gap start
    (dt.date(2026, 10, 25), dt.time(2, 30), utc(2026, 10, 25, 0, 30)),  # overlap: first
    (dt.date(2026, 10, 25), dt.time(9, 0), utc(2026, 10, 25, 8, 0)),  # back to CET
])
def test_local_instant_resolves_gaps_forward_and_overlaps_to_the_first(day, at, expected):
    assert local_instant(day, at, BERLIN) == expected


def test_daily_slot_is_keyed_by_local_day_and_never_runs_yesterday_late():
    sched = DailyAt(dt.time(9, 0), BERLIN)
    assert sched.slot_at("digest", utc(2026, 3, 29, 6, 59)) is None
    slot = sched.slot_at("digest", utc(2026, 3, 29, 7, 0))
    assert slot is not None and slot.key == "job:digest:2026-03-29"
    # 00:30 local the next day: yesterday's slot is gone, today's not yet due.
    assert sched.slot_at("digest", utc(2026, 3, 29, 22, 30)) is None
    assert sched.next_due(utc(2026, 3, 29, 7, 0)) == utc(2026, 3, 30, 7, 0)


def test_sweep_slots_follow_the_interval():
    every = Every(dt.timedelta(minutes=1))
    a = every.slot_at("r", utc(2026, 3, 1, 10, 0, 20))
    b = every.slot_at("r", utc(2026, 3, 1, 10, 0, 59))
    c = every.slot_at("r", utc(2026, 3, 1, 10, 1, 0))
    assert a == b and a != c


def _digest_instants(sink) -> list[dt.datetime]:
    return [m.message["Date"].datetime.astimezone(dt.timezone.utc)
            for m in sink.received if m.kind == "digest"]


@pytest.mark.parametrize("start, days, expected_utc_hours", [
    # Berlin springs forward on Sunday 2026-03-29: 09:00 is 08:00Z before, 07:00Z after.
    (utc(2026, 3, 27, 0, 0), 4, [8, 8, 7, 7]),
    # ... and falls back on Sunday 2026-10-25: 07:00Z before, 08:00Z after.
    (utc(2026, 10, 23, 0, 0), 4, [7, 7, 8, 8]),
])
def test_digest_runs_once_per_local_day_at_the_local_time_across_dst(
        make_bot, sink, clock, start, days, expected_utc_hours):
    bot = make_bot()
    when = start
    while when < start + dt.timedelta(days=days):
        bot.tick(when)
        when += dt.timedelta(minutes=10)
    instants = _digest_instants(sink)
    assert [i.hour for i in instants] == expected_utc_hours
    assert [i.minute for i in instants] == [0] * days
    local_days = [i.astimezone(BERLIN).date() for i in instants]
    assert len(set(local_days)) == days
    assert all(i.astimezone(BERLIN).time() == dt.time(9, 0) for i in instants)


def test_a_digest_time_in_the_spring_gap_runs_once_at_the_end_of_the_gap(make_bot, sink):
    bot = make_bot(digest_time="02:30")
    when = utc(2026, 3, 27, 23, 0)  # midnight local, Saturday
    while when < utc(2026, 3, 30, 12, 0):
        bot.tick(when)
        when += dt.timedelta(minutes=5)
    assert _digest_instants(sink) == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0),
                                      utc(2026, 3, 30, 0, 30)]


def test_an_ambiguous_digest_time_on_the_fall_back_day_runs_once(make_bot, sink):
    bot = make_bot(digest_time="02:30")
    when = utc(2026, 10, 24, 22, 0)  # midnight local, Sunday
    while when < utc(2026, 10, 25, 12, 0):
        bot.tick(when)
        when += dt.timedelta(minutes=5)
    assert _digest_instants(sink) == [utc(2026, 10, 25, 0, 30)]


def test_a_restart_after_the_due_time_runs_the_missed_slot_once(make_bot, sink, clock):
    first = make_bot()
    assert "job:digest:2026-03-23" not in first.tick(utc(2026, 3, 23, 7, 59))
    first.close()  # down from 08:59 local until 10:30 local
    second = make_bot()  # same storage
    assert "job:digest:2026-03-23" in second.tick(utc(2026, 3, 23, 9, 30))
    second.close()
    third = make_bot()
    assert "job:digest:2026-03-23" not in third.tick(utc(2026, 3, 23, 9, 45))
    assert len(_digest_instants(sink)) == 1
    assert sink.received[0].message["Date"].datetime == utc(2026, 3, 23, 9, 30)


def test_a_crash_between_commit_and_queueing_sends_the_digest_once(make_bot, sink,
                                                                 monkeypatch):
    bot = make_bot()

    def crash(*args, **kwargs):
        raise OSError("simulated crash after the commit")

    monkeypatch.setattr(bot.rt.outbox, "enqueue", crash)
    assert bot.tick(utc(2026, 3, 23, 8, 0)) == ["job:reminders:2026-03-23T08:00:00+00:00",
                                                "job:action-items:2026-03-23T08:00:00+00:00"]
    assert sink.unread() == []
    bot.close()
    monkeypatch.undo()
    restarted = make_bot()  # recover() finishes the journaled commit
    restarted.rt.outbox.deliver_due()
    assert "job:digest:2026-03-23" not in restarted.tick(utc(2026, 3, 23, 8, 5))
    assert len(_digest_instants(sink)) == 1


def test_no_backlog_after_days_down(make_bot, sink):
    bot = make_bot()
    bot.tick(utc(2026, 3, 23, 8, 0))
    bot.close()
    back = make_bot()
    back.tick(utc(2026, 3, 27, 7, 30))  # Friday 08:30 local: before today's slot
    assert len(_digest_instants(sink)) == 1
    back.tick(utc(2026, 3, 27, 8, 0))
    assert [d.date() for d in _digest_instants(sink)] == [dt.date(2026, 3, 23),
                                                           dt.date(2026, 3, 27)]
