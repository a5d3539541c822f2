"""Chasing what matters: quiet hours for low severities, escalation to the list after
unanswered stale reminders. Mail received by a real SMTP sink, on the simulated clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from tests.support.bot import LIST, declaration, message, state, utc


@pytest.fixture
def bot(make_bot):
    """Digests at 23:30 Berlin, out of the way (the tests drop them)."""
    return make_bot(digest_time="23:30")


def _declare(bot, when, severity="SEV2", **kw):
    bot.clock.set(when)
    bot.receive(message("[DECLARE] Checkout failing", declaration(severity, **kw),
                        message_id="root"))


def _sweep(bot, sink, start, end, step=dt.timedelta(minutes=15)):
    """Tick from `start` to `end` (exclusive); the stale reminders sent, digests dropped."""
    t = start
    while t < end:
        bot.tick(t)
        t += step
    return [m for m in sink.take(len(sink.unread())) if m.kind != "digest"]


def test_unanswered_reminders_escalate_to_the_list(bot, sink):
    _declare(bot, utc(2026, 3, 23, 9, 0))  # SEV2: an update every 60 minutes
    sink.take(1)
    bot.tick(utc(2026, 3, 23, 10, 0))
    [first] = sink.take(1)
    assert first.rcpt_tos == ["alice@example.com"]
    assert "the next reminder goes to the whole list" not in first.text
    bot.tick(utc(2026, 3, 23, 11, 0))
    [second] = sink.take(1)
    assert second.rcpt_tos == ["alice@example.com"]
    assert "If this one goes unanswered too, the next reminder goes to the whole list." \
        in second.text
    bot.tick(utc(2026, 3, 23, 12, 0))
    [escalation] = sink.take(1)
    assert escalation.message["To"] == LIST
    assert escalation.message["Cc"] == "alice@example.com"
    # The list's one subject for the incident, so it lands in the incident's thread.
    assert escalation.subject == "[INC-1] Checkout failing"
    assert escalation.text.startswith(
        "No update on INC-1 for 3h: 2 reminders to the commander (alice@example.com) "
        "went unanswered.")
    assert "Severity: SEV2\nPhase: investigating\nCommander: alice@example.com" in \
        escalation.text
    assert "no update after 2 reminders: told the list" in bot.incident(1).timeline[-1].note
    # An accepted update answers them all: the next reminder is the commander's again.
    bot.clock.set(utc(2026, 3, 23, 12, 10))
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="identified")))
    assert sink.take(1)[0].kind == "ack"
    assert _sweep(bot, sink, utc(2026, 3, 23, 12, 15), utc(2026, 3, 23, 13, 10)) == []
    bot.tick(utc(2026, 3, 23, 13, 10))
    [again] = sink.take(1)
    assert again.rcpt_tos == ["alice@example.com"]
    assert again.subject.startswith("[INC-1] Update needed")


def test_escalation_can_be_turned_off(make_bot, sink):
    bot = make_bot(schedule="escalate_after_reminders = 0", digest_time="23:30")
    _declare(bot, utc(2026, 3, 23, 9, 0))
    sink.take(1)
    sent = _sweep(bot, sink, utc(2026, 3, 23, 9, 30), utc(2026, 3, 23, 14, 30))
    assert [m.rcpt_tos for m in sent] == [["alice@example.com"]] * 5


def test_quiet_hours_hold_low_severity_reminders_until_morning(bot, sink):
    # SEV3 (every 4 hours) declared 20:00 Berlin: due at midnight, inside 22:00-07:00.
    _declare(bot, utc(2026, 3, 23, 19, 0), severity="SEV3")
    sink.take(1)
    assert _sweep(bot, sink, utc(2026, 3, 23, 19, 15), utc(2026, 3, 24, 6, 0)) == []
    bot.tick(utc(2026, 3, 24, 6, 0))  # 07:00 Berlin
    [reminder] = sink.take(1)
    assert reminder.rcpt_tos == ["alice@example.com"]
    assert reminder.subject.startswith("[INC-1] Update needed: nothing for 11h ")
    # One reminder, not a burst for the night's missed intervals.
    assert _sweep(bot, sink, utc(2026, 3, 24, 6, 15), utc(2026, 3, 24, 10, 0)) == []


@pytest.mark.parametrize("severity", ["SEV2", None])
def test_quiet_hours_never_hold_high_or_unknown_severities(bot, sink, severity):
    bot.clock.set(utc(2026, 3, 23, 21, 30))  # 22:30 Berlin
    body = declaration("SEV2").replace("Severity: SEV2\n", "") if severity is None \
        else declaration(severity)
    bot.receive(message("[DECLARE] Checkout failing", body, message_id="root"))
    sink.take(1)
    sent = _sweep(bot, sink, utc(2026, 3, 23, 21, 45), utc(2026, 3, 24, 0, 31))
    assert sent and all(m.kind == "reminder_stale" for m in sent)
    # Every 60 minutes at SEV2; every 30 (the strictest level's) without a severity.
    assert len(sent) == (3 if severity else 6)


def test_quiet_hours_are_configurable(make_bot, sink):
    bot = make_bot(schedule='quiet_hours = ""', digest_time="23:30")
    _declare(bot, utc(2026, 3, 23, 19, 0), severity="SEV3")
    sink.take(1)
    sent = _sweep(bot, sink, utc(2026, 3, 23, 19, 15), utc(2026, 3, 24, 0, 0))
    assert [m.kind for m in sent] == ["reminder_stale"]  # 23:00 UTC, midnight in Berlin



@pytest.mark.parametrize("line, error", [
    ('quiet_hours = "late"', 'quiet_hours: \'late\' is not a range like "22:00-07:00"'),
    ('quiet_hours = "07:00-07:00"', "quiet_hours: '07:00-07:00' is empty"),
    ('quiet_severities = ["SEV9"]', "quiet_severities: 'SEV9' is not a configured severity"),
    ('quiet_severities = [3]', "quiet_severities must be a list of names"),
    ("escalate_after_reminders = -1", "escalate_after_reminders must be at least 0"),
])
def test_check_config_names_a_bad_chasing_key(tmp_path, sink, line, error):
    from mailbot.config import ConfigError
    from tests.support.bot import load, write_config
    path = write_config(tmp_path, sink.port, schedule=line)
    with pytest.raises(ConfigError, match=re.escape(error)):
        load(path)


def test_the_shipped_config_documents_the_chasing_defaults():
    from mailbot.config import ScheduleConfig, load_config
    from tests.support.bot import REPO
    schedule = load_config(REPO / "config" / "mailbot.toml").schedule
    assert schedule == dataclasses.replace(ScheduleConfig(), timezone=schedule.timezone,
                                           digest_time=schedule.digest_time)
    assert schedule.quiet_hours == (dt.time(22, 0), dt.time(7, 0))
