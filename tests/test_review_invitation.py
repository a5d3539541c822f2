"""The postmortem review invitation as calendars see it, parsed with `icalendar`: an
iTIP METHOD:REQUEST in a `text/calendar; method=REQUEST` part, organised by the
postmortem owner, the commander and leadership invited, one UID per incident, cancelled
(METHOD:CANCEL) on reopen and re-sent with a higher SEQUENCE, never two in one slot."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import icalendar

from tests.support.bot import declaration, message, state, utc

BERLIN = ZoneInfo("Europe/Berlin")


def calendar_part(mail):
    parts = [p for p in mail.message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) <= 1
    if not parts:
        return None, None
    part = parts[0]
    return part, icalendar.Calendar.from_ical(part.get_payload(decode=True))


def event(cal):
    [ev] = [c for c in cal.walk() if c.name == "VEVENT"]
    return ev


def resolve(bot, n, when, owner="bob@example.com"):
    bot.clock.set(when)
    bot.receive(message(f"[DECLARE] Incident {n}", declaration(), message_id=f"root{n}"))
    bot.receive(message(f"Re: [INC-{n}] Incident {n}", state(
        phase="resolved", extra=f"Liaison: c@example.com\nPostmortem-Owner: {owner}")))


def reminders(bot):
    return [m for m in bot.sink.take(len(bot.sink.unread())) if m.kind == "reminder_postmortem"]


def test_the_invitation_is_an_itip_request_organised_by_the_postmortem_owner(make_bot):
    bot = make_bot(digest_time="23:30")
    resolve(bot, 1, utc(2026, 3, 23, 11, 0))  # Monday
    bot.tick(utc(2026, 3, 23, 11, 1))
    [reminder] = reminders(bot)
    part, cal = calendar_part(reminder)
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "REQUEST"
    assert cal["METHOD"] == "REQUEST"
    ev = event(cal)
    assert str(ev["UID"]) == "review-INC-1@example.com"
    assert int(ev["SEQUENCE"]) == 0
    assert ev.decoded("DTSTART") == dt.datetime(2026, 3, 26, 14, 0, tzinfo=BERLIN)
    assert ev.decoded("DTEND") - ev.decoded("DTSTART") == dt.timedelta(hours=1)
    assert str(ev["ORGANIZER"]) == "mailto:bob@example.com"
    attendees = ev["ATTENDEE"] if isinstance(ev["ATTENDEE"], list) else [ev["ATTENDEE"]]
    assert sorted(str(a) for a in attendees) == ["mailto:alice@example.com",
                                                 "mailto:cto@example.com"]
    # The next reminder does not invite again: the same meeting stands.
    bot.tick(utc(2026, 3, 25, 11, 1))
    [again] = reminders(bot)
    assert calendar_part(again) == (None, None)
    assert "2026-03-26 14:00 CET (the invitation came with an earlier reminder)" in again.text


def test_two_reviews_never_share_a_slot(make_bot):
    bot = make_bot(digest_time="23:30")
    resolve(bot, 1, utc(2026, 3, 23, 9, 0))
    bot.tick(utc(2026, 3, 23, 9, 1))
    resolve(bot, 2, utc(2026, 3, 23, 10, 0))
    bot.tick(utc(2026, 3, 23, 10, 1))
    first, second = reminders(bot)
    starts = [event(calendar_part(m)[1]).decoded("DTSTART") for m in (first, second)]
    assert starts == [dt.datetime(2026, 3, 26, 14, 0, tzinfo=BERLIN),
                      dt.datetime(2026, 3, 26, 15, 0, tzinfo=BERLIN)]
    assert "2026-03-26 15:00 CET" in second.text


def test_a_reopen_cancels_the_invitation_and_a_new_resolution_reinvites(make_bot):
    bot = make_bot(digest_time="23:30")
    resolve(bot, 1, utc(2026, 3, 23, 11, 0))
    bot.tick(utc(2026, 3, 23, 11, 1))
    [reminder] = reminders(bot)
    uid = str(event(calendar_part(reminder)[1])["UID"])
    bot.clock.set(utc(2026, 3, 24, 9, 0))
    bot.receive(message("Re: [INC-1] Incident 1", state(phase="investigating",
                                                        narrative="It is back.")))
    [cancel] = [m for m in bot.sink.take(len(bot.sink.unread())) if m.kind == "review_cancel"]
    assert sorted(cancel.rcpt_tos) == ["alice@example.com", "bob@example.com",
                                       "cto@example.com"]
    part, cal = calendar_part(cancel)
    assert part.get_param("method") == "CANCEL" and cal["METHOD"] == "CANCEL"
    ev = event(cal)
    assert str(ev["UID"]) == uid and int(ev["SEQUENCE"]) == 1
    assert str(ev["STATUS"]) == "CANCELLED"
    # Resolved again on Wednesday: the same event, moved, with a higher SEQUENCE.
    bot.clock.set(utc(2026, 3, 25, 9, 0))
    bot.receive(message("Re: [INC-1] Incident 1", state(phase="resolved",
                                                        narrative="Fixed for good.")))
    bot.tick(utc(2026, 3, 25, 9, 1))
    [reinvite] = reminders(bot)
    _, cal = calendar_part(reinvite)
    ev = event(cal)
    assert cal["METHOD"] == "REQUEST" and str(ev["UID"]) == uid
    assert int(ev["SEQUENCE"]) == 2
    assert ev.decoded("DTSTART") == dt.datetime(2026, 3, 30, 14, 0, tzinfo=BERLIN)  # Sat->Mon
