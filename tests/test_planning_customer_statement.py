"""A draft customer update for the liaison (only): at the declaration of a customer-
affecting incident, and again when its severity or phase changes."""

from __future__ import annotations

import pytest

from tests.support.bot import LIST, declaration, message, state, utc

LIAISON = "carol@example.com"


@pytest.fixture
def bot(make_bot):
    return make_bot(oncall="customer_statement = true", digest_time="23:30")


def _declare(bot, extra=f"Liaison: {LIAISON}\n"):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing",
                        declaration("SEV2", extra=extra + "Impact: EU card payments fail\n"),
                        message_id="root"))


def test_the_liaison_alone_gets_a_draft_refreshed_on_severity_or_phase(bot, sink):
    _declare(bot)
    ack, draft = sink.take(2)
    assert ack.rcpt_tos == [LIST]
    assert draft.kind == "customer_statement"
    assert draft.rcpt_tos == [LIAISON] and "Cc" not in draft.message
    assert draft.subject == "[INC-1] Draft customer update: Checkout failing"
    assert draft.text.startswith("The incident was declared, so here is a draft update for "
                                 "customers on INC-1,")
    assert "What is affected: EU card payments fail" in draft.text
    assert "Since: 2026-03-23 10:00 CET" in draft.text
    assert "What we are doing: We are investigating the cause." in draft.text
    assert "Next update: by 2026-03-23 11:00 CET" in draft.text  # SEV2: 60 minutes
    assert draft.message["In-Reply-To"] == "<root@example.com>"
    # A routine update (same severity and phase): no new draft.
    bot.clock.set(utc(2026, 3, 23, 9, 20))
    bot.receive(message("Re: [INC-1] Checkout failing", state(narrative="Still looking."),
                        in_reply_to="root@example.com"))
    assert [m.kind for m in sink.take(1)] == ["ack"]
    # The phase moves on: a fresh draft to the liaison only.
    bot.clock.set(utc(2026, 3, 23, 9, 40))
    bot.receive(message("Re: [INC-1] Checkout failing", state("SEV1", "identified"),
                        in_reply_to="root@example.com"))
    ack, draft = sink.take(2)
    assert draft.rcpt_tos == [LIAISON]
    text = " ".join(draft.text.split())
    assert text.startswith("Its severity is now SEV1 and its phase is now identified, so here")
    assert "We have identified the cause and are working on a fix." in text
    assert "Next update: by 2026-03-23 11:10 CET" in text  # SEV1: 30 minutes
    assert LIAISON not in ack.rcpt_tos


def test_no_draft_when_turned_off(make_bot, sink):
    bot = make_bot("off", oncall="customer_statement = false")
    _declare(bot)
    assert [m.kind for m in sink.take(1)] == ["ack"]
    assert sink.unread() == []


def test_no_draft_without_customer_impact_or_liaison(bot, sink):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing",
                        declaration("SEV2").replace("Customer-Impact: yes",
                                                    "Customer-Impact: no")
                        + f"Liaison: {LIAISON}\n", message_id="a"))
    bot.receive(message("[DECLARE] Search slow", declaration("SEV2"), message_id="b"))
    assert [m.kind for m in sink.take(2)] == ["ack", "ack"]
    assert sink.unread() == []
