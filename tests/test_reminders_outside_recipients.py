"""Stale-update reminders never mail a commander outside the list and the allowed
addresses: the person stays on the incident and in the reminder, the mail goes to
someone mailbot may write to."""

from __future__ import annotations

import logging

from tests.support.bot import declaration, message, utc


def test_stale_reminder_for_an_outside_commander_goes_to_the_declarer(make_bot, sink, caplog):
    bot = make_bot(digest_time="23:30")
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing",
                        declaration("SEV2", commander="Eve <eve@evil.example>"),
                        message_id="root"))
    [ack] = sink.take(1)
    assert "eve@evil.example" in ack.text  # shown as written
    with caplog.at_level(logging.WARNING, logger="mailbot.reminders"):
        bot.tick(utc(2026, 3, 23, 10, 0))  # SEV2: an update was due by 10:00
    [reminder] = sink.take(1)
    assert reminder.kind == "reminder_stale"
    assert reminder.rcpt_tos == ["alice@example.com"]
    assert "evil.example" not in str(reminder.message["To"])
    # The reminder says why it reached the declarer, and names the commander.
    assert "is not an address mailbot can write to" in reminder.text
    assert "Eve <eve@evil.example>" in reminder.text
    assert bot.incident(1).commander == "Eve <eve@evil.example>"
    assert "INC-1: commander eve@evil.example not mailed" in caplog.text
