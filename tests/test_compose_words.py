"""The words people read: the declaration checklist, change labels, [STATUS] replies,
example dates. Mail goes through the real pipeline and lands in a real SMTP sink."""

from __future__ import annotations

import re

import pytest

from tests.support.bot import GOOD_POSTMORTEM, LIST, declaration, message, state, utc

INTERNAL_KEYS = re.compile(r"postmortem_owner|customer_impact|roles\.|started_at|resolved_at")


@pytest.fixture
def bot(make_bot):
    return make_bot(digest_time="23:30")


def test_declaration_ack_asks_for_severity_and_customer_impact(bot, sink):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing",
                        "Phase: investigating\nCommander: alice@example.com\n\nIt broke.",
                        message_id="root"))
    [ack] = sink.take(1)
    assert "A good declaration says 7 things; this one left out 4:" in ack.text
    assert ("  - its severity (Severity:); until it has one, mailbot asks for an update "
            "every 30m, as for SEV1\n") in ack.text
    assert "  - whether customers are affected (Customer-Impact: yes or no)\n" in ack.text
    # Stated "no": not asked again.
    bot.receive(message("[DECLARE] Search slow", declaration("SEV3").replace(
        "Customer-Impact: yes", "Customer-Impact: no") + "Roles: comms=bob@example.com\n"))
    [ack2] = sink.take(1)
    assert "left out" not in ack2.text


def test_resolved_ack_does_not_ask_for_a_liaison(bot, sink):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing", declaration(), message_id="root"))
    [ack] = sink.take(1)
    assert "has no customer liaison" in ack.text  # customer-facing, nobody named
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="resolved")))
    [resolved] = sink.take(1)
    assert resolved.text.startswith("Resolved: INC-1")
    assert "liaison" not in resolved.text.lower()


def test_changes_read_in_words_not_key_names(bot, sink):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing", declaration(), message_id="root"))
    sink.take(1)
    bot.receive(message("Re: [INC-1] Checkout failing", state(
        extra="Postmortem-Owner: dave@example.com\nCustomer-Impact: no\n"
              "Liaison: carol@example.com\n")))
    [ack] = sink.take(1)
    assert "  - postmortem owner: (none) -> dave@example.com\n" in ack.text
    assert "  - customer impact: yes -> no\n" in ack.text
    assert "  - liaison: (none) -> carol@example.com\n" in ack.text
    bot.receive(message("Re: [INC-1] Checkout failing", state(
        extra="Customer-Impact: maybe\n")))
    [ack] = sink.take(1)
    assert '  - Customer-Impact: "maybe" (valid: yes, no)' in ack.text
    bot.clock.set(utc(2026, 3, 23, 10, 0))
    bot.receive(message("[STATUS] [INC-1]", ""))
    [status] = sink.take(1)
    for mail in (ack, status):
        assert not INTERNAL_KEYS.search(mail.text), mail.text


def test_status_carries_latest_words_age_and_last_update(bot, sink):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing", declaration(), message_id="root"))
    bot.clock.set(utc(2026, 3, 23, 10, 15))
    bot.receive(message("Re: [INC-1] Checkout failing", state(
        phase="mitigating", narrative="Rolled back the 09:45 deploy; errors falling."),
        sender="bob@example.com"))
    bot.receive(message("[DECLARE] Search slow", declaration("SEV3"),
                        sender="carol@example.com"))
    sink.take(3)
    bot.clock.set(utc(2026, 3, 23, 11, 0))
    bot.receive(message("[STATUS] [INC-1]", "", sender="dave@example.com"))
    [one] = sink.take(1)
    assert one.rcpt_tos == ["dave@example.com"]
    assert one.text.startswith(
        "INC-1: Checkout failing\n"
        "SEV2, mitigating; open for 2h; last update 45m ago.\n\n"
        "Latest, from bob@example.com at 2026-03-23 11:15 CET:\n"
        "  Rolled back the 09:45 deploy; errors falling.\n")
    bot.receive(message("[STATUS]", "", sender="dave@example.com"))
    [everything] = sink.take(1)
    assert everything.subject == "Status: 2 open incidents"
    assert ("  INC-1  SEV2, mitigating: Checkout failing\n"
            "    open for 2h; last update 45m ago; commander alice@example.com; "
            "no customer liaison\n"
            '    "Rolled back the 09:45 deploy; errors falling." (bob@example.com)\n'
            ) in everything.text
    assert "  INC-2  SEV3, investigating: Search slow\n    open for 45m;" in \
        everything.text


def test_example_due_dates_are_a_few_days_from_today(bot, sink):
    bot.clock.set(utc(2026, 11, 29, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing", declaration(), message_id="root"))
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="resolved")))
    sink.take(2)
    bot.tick(utc(2026, 11, 29, 9, 1))
    [reminder] = sink.take(1)
    assert reminder.kind == "reminder_postmortem"
    assert "- owner: someone@example.com - due: 2026-12-02>" in reminder.text
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing",
                        "Cause:\nx\nImpact:\ny\nResolution:\nz\nPrevention:\nw\n"
                        "Action items:\n- Fix it\n"))
    [rejection] = sink.take(1)
    assert rejection.kind == "postmortem_rejection"
    assert "owner: bob@example.com - due: 2026-12-02\n" in rejection.text
    assert LIST in rejection.text


def _resolved(bot, n, title, when):
    bot.clock.set(when)
    bot.receive(message(f"[DECLARE] {title}", declaration(), message_id=f"root{n}"))
    bot.receive(message(f"Re: [INC-{n}] {title}", state(phase="resolved"),
                        in_reply_to=f"root{n}@example.com"))


def test_digest_subject_counts_what_is_due(make_bot, sink):
    bot = make_bot(postmortem="", digest_time="09:00")
    _resolved(bot, 1, "Checkout failing", utc(2026, 3, 18, 12, 0))  # review 03-23: overdue
    _resolved(bot, 2, "Search slow", utc(2026, 3, 23, 12, 0))  # review 03-26: due
    _resolved(bot, 3, "Login loop", utc(2026, 3, 23, 13, 0))
    bot.receive(message("[POSTMORTEM] [INC-3] Login loop",
                        GOOD_POSTMORTEM.format(soon="2026-03-25")))
    assert bot.incident(3).review_pending
    sink.take(len(sink.unread()))
    bot.tick(utc(2026, 3, 24, 8, 0))
    [digest] = [m for m in sink.take(len(sink.unread())) if m.kind == "digest"]
    assert digest.subject == ("Incident digest 2026-03-24: no open incidents; 2 postmortems "
                              "due (1 overdue), 2 action items due")
    # An open incident and an overdue action item count too.
    bot.clock.set(utc(2026, 3, 25, 7, 0))
    bot.receive(message("[DECLARE] Payments down", declaration("SEV1")))
    sink.take(len(sink.unread()))
    bot.tick(utc(2026, 3, 26, 8, 0))
    [digest] = [m for m in sink.take(len(sink.unread())) if m.kind == "digest"]
    assert digest.subject == ("Incident digest 2026-03-26: 1 open (1 SEV1), 1 stale; "
                              "2 postmortems due (1 overdue), 2 action items due (2 overdue)")


SHARED_EXPERTS = """
[services.checkout]
description = "Checkout pages and the cart"
depends_on = ["payments"]
runbook = "https://wiki.example.com/runbooks/checkout"
[[services.checkout.experts]]
name = "Olga Petrova"
address = "olga@example.com"
role = "on-call"
[[services.checkout.experts]]
name = "Marco Rossi"
address = "marco@example.com"
role = "owner"

[services.payments]
description = "Payment gateway"
runbook = "https://wiki.example.com/runbooks/payments"
[[services.payments.experts]]
name = "Marco Rossi"
address = "marco@example.com"
role = "owner"
[[services.payments.experts]]
name = "Lena Fischer"
address = "lena@example.com"
role = "on-call"
"""


def test_experts_are_listed_once_with_their_runbooks(make_bot, sink):
    bot = make_bot(services=SHARED_EXPERTS, digest_time="09:00")
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing",
                        declaration().replace("Services: checkout", "Services: checkout, payments")))
    [ack] = sink.take(1)
    block = ack.text.split("Experts for the affected services:\n", 1)[1].split("\n\n")[0]
    assert block.strip() == (
        "- Olga Petrova <olga@example.com>: checkout on-call\n"
        "  - Marco Rossi <marco@example.com>: checkout owner, payments owner\n"
        "  - Lena Fischer <lena@example.com>: payments on-call\n"
        "Runbooks:\n"
        "  - checkout: https://wiki.example.com/runbooks/checkout\n"
        "  - payments: https://wiki.example.com/runbooks/payments")
    bot.tick(utc(2026, 3, 24, 8, 0))
    [digest] = [m for m in sink.take(len(sink.unread())) if m.kind == "digest"]
    assert digest.text.count("marco@example.com") == 1
    assert ("      experts: Olga Petrova <olga@example.com>: checkout on-call\n"
            "               Marco Rossi <marco@example.com>: checkout owner, payments owner\n"
            "               Lena Fischer <lena@example.com>: payments on-call\n"
            "      runbooks: checkout https://wiki.example.com/runbooks/checkout\n"
            "                payments https://wiki.example.com/runbooks/payments\n"
            ) in digest.text
    assert 'href="https://wiki.example.com/runbooks/payments"' in digest.html
    assert digest.html.count("mailto:marco@example.com") == 1
