"""Stale-update and postmortem reminders, received by a real SMTP sink."""

from __future__ import annotations

import datetime as dt

from mailbot.ical import fold, ical_text, review_invitation

import pytest

from tests.support.bot import LIST, declaration, message, state, utc


@pytest.fixture
def bot(make_bot):
    """Digests late in the evening (22:30 UTC), out of the way of these reminders."""
    return make_bot(digest_time="23:30")


def _declare(bot, when, severity="SEV2", **kw):
    bot.clock.set(when)
    bot.receive(message("[DECLARE] Checkout failing", declaration(severity, **kw),
                        message_id="root"))


def test_stale_reminder_goes_to_the_commander_once_per_interval(bot, sink):
    _declare(bot, utc(2026, 3, 23, 9, 0))  # SEV2: an update is expected every 60 min
    assert sink.take(1)[0].kind == "ack"
    bot.tick(utc(2026, 3, 23, 9, 59))
    assert sink.unread() == []
    bot.tick(utc(2026, 3, 23, 10, 0))
    [reminder] = sink.take(1)
    assert reminder.kind == "reminder_stale"
    assert reminder.rcpt_tos == ["alice@example.com"]
    assert "Cc" not in reminder.message
    assert reminder.subject.startswith("[INC-1] Update needed")
    assert reminder.message["In-Reply-To"] == "<root@example.com>"
    assert reminder.message["Auto-Submitted"] == "auto-generated"
    assert reminder.message["Reply-To"] == LIST  # the commander's Reply reaches the team
    # The pre-filled block to paste back, and the severity definitions at the end.
    assert "Severity: SEV2\nPhase: investigating\nCommander: alice@example.com" in \
        reminder.text
    assert "no customer liaison" in reminder.text
    assert reminder.text.rstrip().endswith("with\nSeverity:, Phase: and Commander: lines.")
    for minute in (1, 30, 59):
        bot.tick(utc(2026, 3, 23, 10, minute))
    assert sink.unread() == []  # at most once per interval
    bot.tick(utc(2026, 3, 23, 11, 0))
    assert sink.take(1)[0].kind == "reminder_stale"
    assert [e.kind for e in bot.incident(1).timeline].count("reminder") == 2


def test_an_accepted_update_resets_the_clock_and_resolution_stops_it(bot, sink):
    _declare(bot, utc(2026, 3, 23, 9, 0))
    sink.take(1)
    bot.clock.set(utc(2026, 3, 23, 9, 45))
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="identified")))
    sink.take(1)
    bot.tick(utc(2026, 3, 23, 10, 30))
    assert sink.unread() == []  # 45 minutes since the update
    bot.tick(utc(2026, 3, 23, 10, 45))
    assert sink.take(1)[0].kind == "reminder_stale"
    # A rejected follow-up (no commander) is not an update: it does not reset the clock.
    bot.clock.set(utc(2026, 3, 23, 11, 0))
    bot.receive(message("Re: [INC-1] Checkout failing", "Severity: SEV2\n\nstill bad"))
    assert sink.take(1)[0].kind == "rejection"
    bot.tick(utc(2026, 3, 23, 11, 45))
    assert sink.take(1)[0].kind == "reminder_stale"
    bot.clock.set(utc(2026, 3, 23, 12, 0))
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="resolved")))
    assert sink.take(1)[0].text.startswith("Resolved: INC-1 is resolved")
    for hour in (13, 15, 20):
        bot.tick(utc(2026, 3, 23, hour, 0))
    # Resolved: the postmortem reminder starts, the stale-update reminders stop.
    assert [m.kind for m in sink.take(1)] == ["reminder_postmortem"]


def test_stale_reminders_copy_the_list_when_configured(make_bot, sink):
    bot = make_bot(schedule="reminders_cc_list = true", digest_time="23:30")
    _declare(bot, utc(2026, 3, 23, 9, 0), severity="SEV1")  # SEV1: every 30 minutes
    sink.take(1)
    bot.tick(utc(2026, 3, 23, 9, 30))
    [reminder] = sink.take(1)
    assert reminder.message["To"] == "alice@example.com"
    assert reminder.message["Cc"] == LIST
    assert sorted(reminder.rcpt_tos) == ["alice@example.com", LIST]


def _resolve(bot, when, severity="SEV2", owner=""):
    extra = f"Postmortem-Owner: {owner}\n" if owner else ""
    _declare(bot, when - dt.timedelta(minutes=30), severity=severity)
    bot.clock.set(when)
    bot.receive(message("Re: [INC-1] Checkout failing",
                        state(severity, "resolved", extra=extra)))


def test_postmortem_reminders_on_resolution_then_every_n_days(bot, sink):
    _resolve(bot, utc(2026, 3, 23, 11, 0), owner="dave@example.com")
    assert [m.kind for m in sink.take(2)] == ["ack", "ack"]
    bot.tick(utc(2026, 3, 23, 11, 1))
    [first] = sink.take(1)
    assert first.kind == "reminder_postmortem"
    assert first.message["To"] == "dave@example.com, alice@example.com"
    assert first.message["Cc"] == "cto@example.com"  # SEV2 is a leadership severity
    assert "[POSTMORTEM] [INC-1] Checkout failing" in first.text
    for heading in ("Cause:", "Impact:", "Resolution:", "Prevention:", "Action items:",
                    "Timeline:"):
        assert f"\n{heading}\n" in first.text
    assert "resolved by alice@example.com: phase -> resolved" in first.text
    assert "2026-03-26 14:00 CET" in first.text  # resolution + 3 days, Thursday
    ctype, ics = first.attachment(".ics")
    assert ctype == "text/calendar"
    assert b"METHOD:REQUEST\r\n" in ics and b"DTSTART:20260326T130000Z\r\n" in ics
    t = utc(2026, 3, 23, 12, 0)
    while t < utc(2026, 3, 25, 11, 0):  # nothing more for two days
        bot.tick(t)
        t += dt.timedelta(minutes=30)
    assert [m.kind for m in sink.unread()] == ["digest", "digest"]
    sink.take(2)
    bot.tick(utc(2026, 3, 25, 11, 0))
    [second] = sink.take(1)
    assert second.kind == "reminder_postmortem"
    assert "reminder 2" in second.subject
    assert bot.incident(1).postmortem_reminders == 2


def test_leadership_is_not_copied_below_the_configured_severities(bot, sink):
    _resolve(bot, utc(2026, 3, 23, 11, 0), severity="SEV3")
    sink.take(2)
    bot.tick(utc(2026, 3, 23, 11, 1))
    [reminder] = sink.take(1)
    assert reminder.rcpt_tos == ["alice@example.com"]
    assert "cto@example.com" not in reminder.data.decode()
    assert "leadership" not in reminder.text


def test_a_long_outage_catches_up_with_one_reminder_not_a_burst(bot, sink):
    _resolve(bot, utc(2026, 3, 23, 11, 0))
    sink.take(2)
    bot.tick(utc(2026, 3, 30, 11, 0))  # first sweep a week later (mailbot was down)
    assert [m.kind for m in sink.unread()].count("reminder_postmortem") == 1
    # ... and the review date has passed: no invitation for the past.
    reminder = next(m for m in sink.unread() if m.kind == "reminder_postmortem")
    assert reminder.attachment(".ics") is None
    assert "has passed" in reminder.text


def _unfold(ics: bytes) -> list[str]:
    return ics.decode("utf-8").replace("\r\n ", "").split("\r\n")


def test_icalendar_lines_are_crlf_folded_at_75_octets_and_escaped():
    summary = "Postmortem review: INC-7 Zahlungsausfall; Kunden, Händler\\Partner " + "é" * 60
    ics = review_invitation(
        uid="review-7-1@example.com", start=utc(2026, 3, 26, 13, 0),
        end=utc(2026, 3, 26, 14, 0), now=utc(2026, 3, 23, 11, 0), summary=summary,
        description="line one\nline two", organizer=('Bot "X", Inc', "bot@example.com"),
        required=["a@example.com"], optional=["cto@example.com"])
    assert ics.endswith(b"\r\n")
    assert b"\n" not in ics.replace(b"\r\n", b"")
    for line in ics.split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")  # never a split multi-byte character
    lines = _unfold(ics)
    assert lines[:6] == ["BEGIN:VCALENDAR", "VERSION:2.0",
                         "PRODID:-//mailbot//postmortem review//EN", "CALSCALE:GREGORIAN",
                         "METHOD:REQUEST", "BEGIN:VEVENT"]
    assert "SUMMARY:" + ical_text(summary) in lines
    assert "SUMMARY:Postmortem review: INC-7 Zahlungsausfall\\; Kunden\\, Händler\\\\Partner" \
        in lines[lines.index("SUMMARY:" + ical_text(summary))][:200]
    assert "DESCRIPTION:line one\\nline two" in lines
    assert "ORGANIZER;CN=\"Bot 'X', Inc\":mailto:bot@example.com" in lines
    assert any(x.startswith("ATTENDEE;") and x.endswith("mailto:cto@example.com")
               and "ROLE=OPT-PARTICIPANT" in x for x in lines)
    assert lines[-3:] == ["END:VEVENT", "END:VCALENDAR", ""]


def test_fold_keeps_short_lines_whole():
    assert fold("UID:x") == b"UID:x\r\n"
    folded = fold("X:" + "a" * 200)
    assert [len(p) for p in folded.split(b"\r\n")[:-1]] == [75, 75, 54]  # 202 octets: 75 + (1 + 74) + (1 + 53)


def test_an_incident_without_severity_is_chased_at_the_strictest_cadence(bot, sink):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    body = declaration("SEV2").replace("Severity: SEV2\n", "")
    bot.receive(message("[DECLARE] Checkout failing", body, message_id="root"))
    assert sink.take(1)[0].kind == "ack"
    bot.tick(utc(2026, 3, 23, 9, 29))
    assert sink.unread() == []
    bot.tick(utc(2026, 3, 23, 9, 30))  # SEV1's 30 minutes, not SEV4's day
    [reminder] = sink.take(1)
    assert reminder.kind == "reminder_stale"
    assert "It has no severity yet, so it is chased as the most severe level is" in \
        reminder.text
    assert "every\n30m, until an update states one" in reminder.text
