"""The done-when test: one incident's week, end to end, on a simulated clock.

Berlin time; the week ends across the spring-forward change (Sunday 2026-03-29), so the
last two digests leave at 07:00 UTC instead of 08:00. mailbot ticks every five minutes;
mail arrives through the spool and the pipeline; everything leaves through the outbox to a
real SMTP sink, and each local day's mail is checked.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from tests.support.bot import GOOD_POSTMORTEM, LIST, declaration, message, state

BERLIN = ZoneInfo("Europe/Berlin")
ALICE, BOB, CTO = "alice@example.com", "bob@example.com", "cto@example.com"


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=BERLIN).astimezone(dt.timezone.utc)


INCOMPLETE = """\
Cause: a pool limit was removed and nothing validated it.
Impact: checkout failed for 40% of requests for 90 minutes.
Resolution: rolled back the configuration.
Action items:
- Add a CI check for pool limits - owner: bob@example.com
"""

EVENTS = [
    # Monday
    (local(23, 10, 2), "declare", (BOB, "[DECLARE] Checkout failing", declaration())),
    (local(23, 10, 20), "update", (ALICE, "Re: [INC-1] Checkout failing",
                                   state(phase="identified", narrative="Pool exhausted."))),
    # ... then nothing for an hour: the 11:20 sweep reminds alice.
    (local(23, 11, 40), "update", (ALICE, "Re: [INC-1] Checkout failing",
                                   state(phase="mitigating", extra="Liaison: carol@example.com"))),
    (local(23, 12, 30), "update", (ALICE, "Re: [INC-1] Checkout failing",
                                   state(phase="resolved", extra="Postmortem-Owner: bob@example.com",
                                         narrative="Rolled back; error rate normal."))),
    # Thursday: a postmortem without Prevention and an item without a due date, then a
    # good one with a blame sentence and a far-out item.
    (local(26, 10, 0), "postmortem", (BOB, "[POSTMORTEM] [INC-1] Checkout failing", INCOMPLETE)),
    (local(26, 11, 0), "postmortem", (BOB, "[POSTMORTEM] [INC-1] Checkout failing",
                                      GOOD_POSTMORTEM.format(soon="2026-03-30").replace(
                                          "Rolled back the configuration",
                                          "Jim pushed bad code, so we rolled back") +
                                      "- Re-architect the pool - owner: dave@example.com - "
                                      "due: 2026-06-30\n")),
    # ... sent back for the blame; written again about the system, it is accepted.
    (local(26, 11, 30), "postmortem", (BOB, "[POSTMORTEM] [INC-1] Checkout failing",
                                       GOOD_POSTMORTEM.format(soon="2026-03-30") +
                                       "- Re-architect the pool - owner: dave@example.com - "
                                       "due: 2026-06-30\n")),
    # Friday: the review meeting was held; the CTO records it.
    (local(27, 10, 0), "reviewed", (CTO, "[REVIEWED] [INC-1] Checkout failing",
                                    "Reviewed with the team.")),
]


def test_one_incident_week(make_bot, sink):
    bot = make_bot()
    by_day: dict[dt.date, list] = defaultdict(list)
    events = list(EVENTS)
    now = local(23, 0, 0)
    end = local(30, 12, 0)
    while now < end:
        while events and events[0][0] <= now:
            when, _, (sender, subject, body) = events.pop(0)
            bot.clock.set(when)
            bot.receive(message(subject, body, sender=sender,
                                message_id="root" if "DECLARE" in subject else None))
        bot.tick(now)
        for mail in sink.take(len(sink.unread())) if sink.unread() else []:
            sent = mail.message["Date"].datetime
            by_day[sent.astimezone(BERLIN).date()].append(mail)
        now += dt.timedelta(minutes=5)

    def day(n: int) -> list[tuple[str, list[str]]]:
        return [(m.kind, sorted(m.rcpt_tos)) for m in by_day[dt.date(2026, 3, n)]]

    digests = {d: [m for m in mails if m.kind == "digest"] for d, mails in by_day.items()}
    # One digest each local morning at 09:00, DST-correct, to the list.
    assert sorted(digests) == [dt.date(2026, 3, n) for n in range(23, 31)]
    for _day, [digest] in digests.items():
        assert digest.rcpt_tos == [LIST]
        assert digest.message["Date"].datetime.astimezone(BERLIN).time() == dt.time(9, 0)
    assert digests[dt.date(2026, 3, 28)][0].message["Date"].datetime.hour == 8  # 08:00Z
    assert digests[dt.date(2026, 3, 29)][0].message["Date"].datetime.hour == 7  # 07:00Z

    # Monday: empty digest; declaration and three acks to the list; one stale reminder to
    # the commander; the first postmortem reminder (owner bob, commander alice, cto in Cc).
    assert day(23) == [
        ("digest", [LIST]),
        ("ack", [LIST]), ("ack", [LIST]),
        ("reminder_stale", [ALICE]),
        ("ack", [LIST]), ("ack", [LIST]),
        ("reminder_postmortem", sorted([BOB, ALICE, CTO])),
    ]
    monday = by_day[dt.date(2026, 3, 23)]
    assert "no open incidents" in monday[0].subject
    stale = monday[3]
    assert stale.message["Date"].datetime == local(23, 11, 20)
    assert "Phase: identified" in stale.text
    first_pm = monday[6]
    assert first_pm.message["Date"].datetime == local(23, 12, 30)
    assert first_pm.attachment(".ics") is not None
    assert "2026-03-26 14:00 CET" in first_pm.text

    # Tuesday: the digest shows it resolved in the last day, its postmortem due.
    assert day(24) == [("digest", [LIST])]
    tuesday = digests[dt.date(2026, 3, 24)][0].text
    assert "INC-1  Checkout failing (SEV2), resolved 2026-03-23 12:30 CET" in tuesday
    assert "POSTMORTEMS: 0 overdue, 1 due" in tuesday
    assert "OPEN INCIDENTS: 0" in tuesday

    # Wednesday: digest, and the second postmortem reminder two days after resolution.
    assert day(25) == [("digest", [LIST]), ("reminder_postmortem", sorted([BOB, ALICE, CTO]))]
    second = by_day[dt.date(2026, 3, 25)][1]
    assert "reminder 2" in second.subject
    assert second.message["Date"].datetime == local(25, 12, 30)

    # Thursday: the rejections to bob alone (incomplete, then blame), then the ack of the
    # good one to the list, without a word of blame.
    assert day(26) == [("digest", [LIST]), ("postmortem_rejection", [BOB]),
                       ("postmortem_rejection", [BOB]), ("postmortem_ack", [LIST])]
    rejection, blame, ack = by_day[dt.date(2026, 3, 26)][1:]
    assert "Prevention (the steps to take" in rejection.text
    assert "no due date" in rejection.text
    assert "> Jim pushed bad code, so we rolled back, restarted the checkout pods." in blame.text
    assert "Jim" not in ack.text
    assert "Re-architect the pool (owner dave@example.com, due 2026-06-30)" in ack.text
    assert bot.incident(1).status == "closed"

    # Friday: the review is recorded (no third reminder: closed); the digest lists the
    # action items due soon.
    assert day(27) == [("digest", [LIST]), ("review_ack", [LIST])]
    friday = digests[dt.date(2026, 3, 27)][0].text
    assert "2026-03-30  INC-1 A1  Add a CI check for pool limits (owner bob@example.com)" \
        in friday
    assert "Re-architect the pool" not in friday
    assert "POSTMORTEMS: 0 overdue, 0 due" in friday
    for n in (28, 29):
        assert day(n) == [("digest", [LIST])]
    # Monday: the items fall due; each owner hears it.
    assert sorted(day(30)) == [("digest", [LIST]), ("reminder_action_item", [BOB]),
                               ("reminder_action_item", ["carol@example.com"])]
    assert "2026-03-30  INC-1 A2  Add checkout to the canary" in \
        digests[dt.date(2026, 3, 30)][0].text

    timeline = [e.kind for e in bot.incident(1).timeline]
    assert timeline == ["declared", "updated", "reminder", "updated", "resolved", "reminder",
                        "reminder", "postmortem-rejected", "postmortem-rejected",
                        "postmortem-accepted", "postmortem-reviewed"]
