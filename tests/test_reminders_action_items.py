"""Action items with a life: numbered, reminded to their owners when due and overdue,
marked done by `[DONE] [INC-n]` with `Done: A1`, shown in the digest; and postmortems as
people write them (a sign-off after the items, a due date in a table cell, `@name`)."""

from __future__ import annotations

import datetime as dt

from mailbot.parsing.postmortem import (item_lines, parse_action_item, people_directory,
                                        resolve_owner)

from tests.support.bot import GOOD_POSTMORTEM, LIST, declaration, message, state, utc

POSTMORTEM = GOOD_POSTMORTEM.replace(
    "## Action items\n- Add a CI check for pool limits - owner: bob@example.com - due: {soon}\n"
    "- Add checkout to the canary (owner: carol@example.com, due {soon})\n",
    "## Action items\n- Add a CI check for pool limits - owner: bob@example.com - due: {soon}\n"
    "- Add checkout to the canary (owner: @olga, due {later})\n")


def _accepted(bot, soon="2026-03-27", later="2026-03-30"):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing", declaration(), message_id="root"))
    bot.clock.set(utc(2026, 3, 23, 11, 0))
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="resolved",
                                                              extra="Liaison: c@example.com")))
    bot.clock.set(utc(2026, 3, 26, 9, 0))
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing",
                        POSTMORTEM.format(soon=soon, later=later), sender="bob@example.com"))
    bot.sink.take(3)


def test_owners_are_reminded_on_the_due_day_and_once_overdue(make_bot):
    bot = make_bot(digest_time="09:00")
    _accepted(bot)
    items = bot.incident(1).postmortem.action_items
    # "@olga" was resolved through the experts directory.
    assert [(a.label, a.owner) for a in items] == [("A1", "bob@example.com"),
                                                   ("A2", "olga@example.com")]
    # The due day, before 09:00 Berlin: nothing yet; at 09:00: A1's owner alone.
    bot.tick(utc(2026, 3, 27, 7, 30))
    assert [m for m in bot.sink.unread() if m.kind == "reminder_action_item"] == []
    bot.tick(utc(2026, 3, 27, 8, 0))
    [due] = [m for m in bot.sink.take(len(bot.sink.unread()))
             if m.kind == "reminder_action_item"]
    assert due.rcpt_tos == ["bob@example.com"]
    assert due.subject == "[INC-1] Action item A1 due today: Add a CI check for pool limits"
    assert "Done: A1" in due.text
    # Later that day: nothing again. Next day: overdue, once.
    bot.tick(utc(2026, 3, 27, 15, 0))
    bot.tick(utc(2026, 3, 28, 8, 0))
    bot.tick(utc(2026, 3, 28, 9, 0))
    overdue = [m for m in bot.sink.take(len(bot.sink.unread()))
               if m.kind == "reminder_action_item"]
    assert [m.subject for m in overdue] == [
        "[INC-1] Action item A1 overdue: Add a CI check for pool limits"]
    assert bot.incident(1).postmortem.item("A1").reminded == ("due", "overdue")


def test_done_from_the_owner_marks_it_and_stops_its_reminders(make_bot):
    bot = make_bot(digest_time="09:00")
    _accepted(bot)
    bot.clock.set(utc(2026, 3, 26, 12, 0))
    bot.receive(message("[DONE] [INC-1] CI check", "Merged the check.\n\nDone: A1\n",
                        sender="bob@example.com"))
    [ack] = bot.sink.take(1)
    assert ack.kind == "done_ack" and ack.rcpt_tos == [LIST]
    assert "A1. Add a CI check for pool limits" in ack.text
    assert "Still open:\n  A2. Add checkout to the canary (owner olga@example.com" in ack.text
    item = bot.incident(1).postmortem.item("A1")
    assert item.done_by == "bob@example.com" and item.done_at == utc(2026, 3, 26, 12, 0)
    bot.tick(utc(2026, 3, 27, 8, 0))
    bot.tick(utc(2026, 3, 28, 8, 0))
    assert [m for m in bot.sink.unread() if m.kind == "reminder_action_item"] == []


def test_a_reply_to_the_reminder_saying_done_marks_it_done(make_bot):
    bot = make_bot(digest_time="09:00")
    _accepted(bot)
    bot.tick(utc(2026, 3, 27, 8, 0))
    [due] = [m for m in bot.sink.take(len(bot.sink.unread()))
             if m.kind == "reminder_action_item"]
    bot.clock.set(utc(2026, 3, 27, 10, 0))
    bot.receive(message("Re: " + due.subject, "Done: A1\n\nMerged this morning.",
                        sender="bob@example.com",
                        in_reply_to=due.message["Message-ID"].strip("<>")))
    [ack] = bot.sink.take(1)
    assert ack.kind == "done_ack"
    assert bot.incident(1).postmortem.item("A1").done_by == "bob@example.com"


def test_done_from_someone_else_or_for_an_unknown_item_is_a_private_note(make_bot):
    bot = make_bot(digest_time="09:00")
    _accepted(bot)
    bot.receive(message("[DONE] [INC-1] canary", "Done: A2", sender="dave@example.com"))
    [note] = bot.sink.take(1)
    assert note.kind == "done_refused" and note.rcpt_tos == ["dave@example.com"]
    assert "you do not\nown A2" in note.text
    bot.receive(message("[DONE] [INC-1] canary", "Done: A7", sender="bob@example.com"))
    [note] = bot.sink.take(1)
    assert note.kind == "done_refused" and "INC-1 has no action item A7." in note.text
    assert all(a.done_at is None for a in bot.incident(1).postmortem.action_items)
    # The commander may mark anyone's item done; so may leadership, after the closing review.
    bot.receive(message("[DONE] [INC-1] canary", "Done: A2", sender="alice@example.com"))
    assert bot.sink.take(1)[0].kind == "done_ack"
    bot.receive(message("[REVIEWED] [INC-1]", "Reviewed.", sender="cto@example.com"))
    bot.sink.take(1)
    assert bot.incident(1).status == "closed"
    bot.receive(message("[DONE] [INC-1] check", "Done: A1", sender="cto@example.com"))
    assert bot.sink.take(1)[0].kind == "done_ack"
    assert all(a.done_at for a in bot.incident(1).postmortem.action_items)


def test_items_of_a_closed_incident_are_still_reminded(make_bot):
    bot = make_bot(digest_time="09:00")
    _accepted(bot)
    bot.receive(message("[REVIEWED] [INC-1]", "Reviewed.", sender="cto@example.com"))
    bot.sink.take(1)
    assert bot.incident(1).status == "closed"
    bot.tick(utc(2026, 3, 30, 8, 0))  # A1 overdue, A2 due
    sent = sorted(m.subject for m in bot.sink.take(len(bot.sink.unread()))
                  if m.kind == "reminder_action_item")
    assert sent == ["[INC-1] Action item A1 overdue: Add a CI check for pool limits",
                    "[INC-1] Action item A2 due today: Add checkout to the canary"]


def test_the_digest_shows_due_and_overdue_items_with_their_labels(make_bot):
    bot = make_bot(digest_time="09:00")
    _accepted(bot)
    bot.tick(utc(2026, 3, 28, 8, 0))
    [digest] = [m for m in bot.sink.take(len(bot.sink.unread())) if m.kind == "digest"]
    assert "2026-03-27 OVERDUE  INC-1 A1  Add a CI check for pool limits" in digest.text
    assert "2026-03-30  INC-1 A2  Add checkout to the canary" in digest.text


# ---------------------------------------------------------------- as people write them


def test_a_sign_off_after_the_items_is_no_item(make_bot):
    bot = make_bot(digest_time="23:30")
    text = GOOD_POSTMORTEM.format(soon="2026-03-30") + "\nThanks,\nAlice\n"
    _accepted_with(bot, text)
    [ack] = bot.sink.take(1)
    assert ack.kind == "postmortem_ack", ack.text
    assert len(bot.incident(1).postmortem.action_items) == 2
    bot2 = make_bot(name="b2", digest_time="23:30")
    _accepted_with(bot2, GOOD_POSTMORTEM.format(soon="2026-03-30") + "\nAlice Smith\n")
    assert bot2.sink.take(1)[0].kind == "postmortem_ack"


def _accepted_with(bot, text):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing", declaration(), message_id="root"))
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="resolved",
                                                              extra="Liaison: c@example.com")))
    bot.sink.take(2)
    bot.clock.set(utc(2026, 3, 26, 9, 0))  # a Thursday
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing", text,
                        sender="bob@example.com"))


def test_a_table_with_a_weekday_cell_and_names_from_the_directory(make_bot):
    bot = make_bot(digest_time="23:30")
    text = GOOD_POSTMORTEM.format(soon="x").split("## Action items")[0] + (
        "## Action items\n\n| Action | Owner | Due |\n|---|---|---|\n"
        "| Upload the IdP certificate with a checklist | Tara | Friday |\n"
        "| Alert 14 days before certificates expire | @olga | 2026-03-31 |\n")
    _accepted_with(bot, text)
    [ack] = bot.sink.take(1)
    assert ack.kind == "postmortem_ack", ack.text
    assert [(a.label, a.owner, a.due) for a in bot.incident(1).postmortem.action_items] == [
        ("A1", "tara@example.com", dt.date(2026, 3, 27)),
        ("A2", "olga@example.com", dt.date(2026, 3, 31))]


def test_names_resolve_only_when_the_directory_knows_one_person_by_them():
    people = people_directory([("Ben Ortiz", "ben@example.com"),
                               ("Ben Kim", "bkim@example.com"),
                               ("Tara Singh", "tara@example.com")])
    assert resolve_owner("@ben.ortiz", people) == "ben@example.com"
    assert resolve_owner("@nobody", people) == "@nobody"  # kept as written
    assert resolve_owner("Ben Ortiz", people) == "ben@example.com"
    assert resolve_owner("@ben", people) == "ben@example.com"  # a local part
    assert resolve_owner("Ben", people) == "ben@example.com"
    assert resolve_owner("bkim", people) == "bkim@example.com"
    assert resolve_owner("tara", people) == "tara@example.com"
    assert resolve_owner("Priya", people) == "Priya"
    # "Ben" as a first name is two people, but "ben" is also Ben Ortiz's local part.
    people = people_directory([("Ben Ortiz", "bo@example.com"), ("Ben Kim", "bk@example.com")])
    assert resolve_owner("Ben", people) == "Ben"


def test_table_rows_label_owner_and_due_columns():
    section = ("| Item | Owner | Due |\n|:-----|-------|----:|\n"
               "| Add a CI check | bob@example.com | Friday |\n")
    [line] = item_lines(section)
    item = parse_action_item(line, dt.date(2026, 3, 26), dt.date(2026, 4, 2))
    assert (item.text, item.owner, item.due) == ("Add a CI check", "bob@example.com",
                                                 dt.date(2026, 3, 27))
