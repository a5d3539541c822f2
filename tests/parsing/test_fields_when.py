"""When it really happened: `Started-At:` / `Resolved-At:` set the incident's start and
end, and every duration mailbot writes counts from them. Through the real pipeline, to a
real SMTP sink, on the simulated clock (Berlin time: CET, UTC+1, in these tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mailbot.parsing.fields import parse_when

from tests.support.bot import declaration, message, state, utc

BERLIN = "Europe/Berlin"


@pytest.fixture
def bot(make_bot):
    return make_bot(digest_time="09:00")


def _at(bot, when):
    """Set the clock and give the Date: header a person's mail program would write then."""
    bot.clock.set(when)
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def test_started_and_resolved_at_set_the_incident_and_its_durations(bot, sink):
    date = _at(bot, utc(2026, 3, 23, 9, 30))  # 10:30 in Berlin
    bot.receive(message("[DECLARE] Checkout failing",
                        declaration(extra="Started-At: 09:50\n"), message_id="root",
                        date=date))
    inc = bot.incident(1)
    assert inc.started_at == utc(2026, 3, 23, 8, 50)
    assert inc.declared_at == utc(2026, 3, 23, 9, 30)
    [ack] = sink.take(1)
    assert "  Started:         2026-03-23 09:50 CET\n" \
           "  Declared:        2026-03-23 10:30 CET by alice@example.com\n" in ack.text

    date = _at(bot, utc(2026, 3, 23, 12, 0))  # 13:00: "it ended at 12:40"
    bot.receive(message("Re: [INC-1] Checkout failing",
                        state(phase="resolved", extra="Resolved-At: 12:40\n"), date=date))
    inc = bot.incident(1)
    assert inc.resolved_at == utc(2026, 3, 23, 11, 40)
    [ack] = sink.take(1)
    assert ack.text.startswith("Resolved: INC-1")
    assert ("Now: SEV2, resolved. Commander: alice@example.com\n"
            "Resolved 2026-03-23 12:40 CET, after 2h 50m (it started 2026-03-23 09:50 CET).\n"
            ) in ack.text

    bot.tick(utc(2026, 3, 23, 12, 1))
    [reminder] = [m for m in sink.take(len(sink.unread())) if m.kind == "reminder_postmortem"]
    assert "It lasted 2h 50m, from 2026-03-23 09:50 CET to 2026-03-23 12:40 CET.\n" \
           "- 2026-03-23 09:50 CET  began\n" in reminder.text
    assert "was resolved 2026-03-23 12:40 CET" in reminder.text

    date = _at(bot, utc(2026, 3, 23, 13, 0))
    bot.receive(message("[STATUS] [INC-1]", "", sender="dave@example.com", date=date))
    [status] = sink.take(1)
    assert "SEV2, resolved; resolved 1h 20m ago, after 2h 50m; last update 1h ago.\n" \
        in status.text

    bot.tick(utc(2026, 3, 24, 8, 0))
    [digest] = [m for m in sink.take(len(sink.unread())) if m.kind == "digest"]
    assert "  INC-1  Checkout failing (SEV2), resolved 2026-03-23 12:40 CET\n" in digest.text

    # A correction of the end, once resolved, is a change like any other.
    date = _at(bot, utc(2026, 3, 24, 8, 30))
    bot.receive(message("Re: [INC-1] Checkout failing", state(
        phase="resolved", extra="Resolved-At: 2026-03-23 12:20\n"), date=date))
    assert bot.incident(1).resolved_at == utc(2026, 3, 23, 11, 20)
    [ack] = [m for m in sink.take(len(sink.unread())) if m.kind == "ack"]
    assert "  - resolved: 2026-03-23 12:40 CET -> 2026-03-23 12:20 CET\n" in ack.text
    # Stored and read back (the record is JSON): still instants.
    bot.close()
    again = type(bot)(bot.config, bot.clock, sink)
    try:
        [change] = again.incident(1).timeline[-1].changes
        assert change.new == utc(2026, 3, 23, 11, 20)
    finally:
        again.close()


def test_open_for_counts_from_the_start_in_the_digest_and_the_board(bot, sink, tmp_path):
    date = _at(bot, utc(2026, 3, 23, 20, 0))  # 21:00 in Berlin
    bot.receive(message("[DECLARE] Checkout failing",
                        declaration(extra="Started-At: 2026-03-23 18:00 UTC\n"), date=date))
    sink.take(1)
    bot.tick(utc(2026, 3, 24, 8, 0))
    [digest] = [m for m in sink.take(len(sink.unread())) if m.kind == "digest"]
    assert ", open 14h, last update 12h ago" in digest.text
    out = tmp_path / "site"
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "mailbot", "--config", str(bot.config.path),
                           "show", "INC-1", "--json"], capture_output=True, text=True,
                          env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["started_at"] == "2026-03-23T18:00:00+00:00"
    from mailbot.publish import publish_site
    publish_site(out, bot.rt.store.live_incidents(), bot.rt.directory, bot.config,
                 utc(2026, 3, 24, 8, 0))
    board = (out / "index.html").read_text(encoding="utf-8")
    assert 'title="Began 2026-03-23 19:00 CET">14h</td>' in board
    page = (out / "incidents" / "INC-1.html").read_text(encoding="utf-8")
    assert "<dt>Started</dt><dd>2026-03-23 19:00 CET</dd>" in page
    assert "open for 14h" in page


def test_a_time_that_cannot_be_read_is_not_applied_and_says_what_would_be(bot, sink):
    date = _at(bot, utc(2026, 3, 23, 9, 30))
    bot.receive(message("[DECLARE] Checkout failing", declaration(), message_id="root",
                        date=date))
    sink.take(1)
    bot.receive(message("Re: [INC-1] Checkout failing",
                        state(extra="Started-At: this morning\n"), date=date))
    [rejection] = sink.take(1)
    assert rejection.rcpt_tos == ["alice@example.com"]
    assert ('  - Started-At: "this morning" (valid: 09:50, yesterday 23:10, '
            '2026-03-23 08:00 CET)') in rejection.text
    assert bot.incident(1).started_at is None


SENT = utc(2026, 3, 23, 9, 30)  # 10:30 CET


@pytest.mark.parametrize("value, expected", [
    ("09:50", utc(2026, 3, 23, 8, 50)),
    ("9.50", utc(2026, 3, 23, 8, 50)),
    ("10:40", utc(2026, 3, 23, 9, 40)),  # ten minutes "ahead": clocks differ
    ("23:10", utc(2026, 3, 22, 22, 10)),  # later than the mail: the evening before
    ("yesterday 23:10", utc(2026, 3, 22, 22, 10)),
    ("today 08:00", utc(2026, 3, 23, 7, 0)),
    ("2026-03-22 16:00", utc(2026, 3, 22, 15, 0)),
    ("2026-03-22 16:00 CET", utc(2026, 3, 22, 15, 0)),
    ("2026-03-22 16:00 UTC", utc(2026, 3, 22, 16, 0)),
    ("2026-03-22T16:00:00+02:00", utc(2026, 3, 22, 14, 0)),
    ("08:00 UTC", utc(2026, 3, 23, 8, 0)),
    ("09:00 Europe/London", utc(2026, 3, 23, 9, 0)),
    ("*09:50*", utc(2026, 3, 23, 8, 50)),
    ("this morning", None),
    ("25:00", None),
    ("2026-02-30 10:00", None),
    ("2026-03-23 16:00", None),  # later today: has not happened yet
    ("today 23:00", None),
    ("09:50 CST", None),  # several zones: not guessed
])
def test_parse_when(value, expected):
    assert parse_when(value, SENT, BERLIN) == expected


def test_parse_when_across_daylight_saving():
    # Sunday 29 March 2026, 10:00 CEST: 09:00 that day was already summer time.
    sent = utc(2026, 3, 29, 8, 0)
    assert parse_when("09:00", sent, BERLIN) == utc(2026, 3, 29, 7, 0)
    assert parse_when("01:30", sent, BERLIN) == utc(2026, 3, 29, 0, 30)  # still CET
    assert parse_when("yesterday 09:00", sent, BERLIN) == utc(2026, 3, 28, 8, 0)
    # No Date: header: a date and time still reads, a time of day alone cannot.
    assert parse_when("2026-03-28 09:00", None, BERLIN) == utc(2026, 3, 28, 8, 0)
    assert parse_when("09:00", None, BERLIN) is None
