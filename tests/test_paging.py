"""Paging by email: `Page:` mails the person on call (their pager address), the ack says
so, an unanswered page escalates to the next in the rotation and then the owner on the
injected clock, a paged person may write to the incident, and pages obey the caps and
never reach an address outside the directory or the allowed senders."""

from __future__ import annotations

import pytest

from tests.support.bot import LIST, declaration, message, state, utc, write_config

PAGER = "4915550001@sms.example.net"
CONTRACTOR = "kim@partner.example.org"  # in the directory, not an allowed sender

SERVICES = f"""
[services.checkout]
description = "Checkout pages and the cart"

[[services.checkout.experts]]
name = "Olga Petrova"
address = "olga@example.com"
role = "on-call"
pager = "{PAGER}"

[[services.checkout.experts]]
name = "Kim Contractor"
address = "{CONTRACTOR}"
role = "on-call"

[[services.checkout.experts]]
name = "Tara Singh"
address = "tara@example.com"
role = "owner"

[services.checkout.rotation]
members = ["{CONTRACTOR}", "olga@example.com"]
start = "2026-03-16"
handover_day = "monday"
handover_time = "09:00"
timezone = "Europe/Berlin"
"""

T0 = utc(2026, 3, 23, 9, 0)  # Monday 10:00 in Berlin: Olga's turn began at 09:00


@pytest.fixture
def bot(make_bot):
    return make_bot(digest_time="23:30", services=SERVICES)


def _declare(bot, severity="SEV1", page="checkout", mid="root"):
    bot.clock.set(T0)
    bot.receive(message("[DECLARE] Checkout failing",
                        declaration(severity, extra=f"Page: {page}\n"), message_id=mid))


def test_page_goes_to_the_pager_of_whoever_is_on_call_and_the_ack_says_so(bot, sink):
    _declare(bot)
    ack, page = sink.take(2)
    assert ack.kind == "ack" and ack.rcpt_tos == [LIST]
    assert "Paged:\n  - Olga Petrova (checkout on call) at " + PAGER in ack.text
    assert page.kind == "page"
    assert page.rcpt_tos == [PAGER]
    assert page.subject == "PAGE [INC-1] SEV1: Checkout failing"
    first = page.text.splitlines()[0]
    assert first == "INC-1 SEV1: checkout returns 500. Channel: #inc-checkout."
    assert "You are paged as checkout on call" in page.text
    assert "within 10m, mailbot pages the next in turn, then the owner." in page.text
    assert page.message["Reply-To"] == LIST
    assert page.message["In-Reply-To"] == "<root@example.com>"
    assert page.message["Auto-Submitted"] == "auto-generated"
    incident = bot.incident(1)
    [paged] = incident.pages
    assert (paged.person, paged.sent_to, paged.level) == ("olga@example.com", PAGER, 0)
    assert incident.timeline[-1].kind == "paged"
    assert PAGER in incident.timeline[-1].note


def test_unanswered_page_escalates_to_the_next_in_turn_then_the_owner(bot, sink):
    _declare(bot)
    sink.take(2)
    bot.tick(utc(2026, 3, 23, 9, 9))
    assert sink.unread() == []
    bot.tick(utc(2026, 3, 23, 9, 10))
    [second] = sink.take(1)
    assert second.kind == "page" and second.rcpt_tos == [CONTRACTOR]
    assert "as checkout next in turn" in second.text
    assert "Nobody answered the page to Olga Petrova." in second.text
    bot.tick(utc(2026, 3, 23, 9, 15))
    assert sink.unread() == []
    bot.tick(utc(2026, 3, 23, 9, 20))
    [third] = sink.take(1)
    assert third.rcpt_tos == ["tara@example.com"]
    assert "as checkout owner" in third.text
    for minute in (30, 45, 59):
        bot.tick(utc(2026, 3, 23, 9, minute))
    assert [m for m in sink.unread() if m.kind == "page"] == []  # nobody after the owner
    assert [p.level for p in bot.incident(1).pages] == [0, 1, 2]


def test_a_paged_outsider_may_write_to_the_incident_and_that_answers_the_page(bot, sink):
    _declare(bot)
    bot.tick(utc(2026, 3, 23, 9, 10))  # paged: the contractor, outside allowed_senders
    sink.take(3)
    bot.clock.set(utc(2026, 3, 23, 9, 12))
    bot.receive(message("Re: [INC-1] Checkout failing", "On it, joining the bridge.",
                        sender=CONTRACTOR, in_reply_to="root@example.com"))
    incident = bot.incident(1)
    assert incident.timeline[-1].kind == "comment"
    assert incident.timeline[-1].author == CONTRACTOR
    assert all(p.answered_at is not None for p in incident.pages)
    sink.take(len(sink.unread()))  # the one-time note on how to update
    bot.tick(utc(2026, 3, 23, 9, 29))
    assert sink.unread() == []  # no owner page
    # Someone else from outside, never paged, is still a stranger: ignored, unanswered.
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="mitigating"),
                        sender="eve@partner.example.org", in_reply_to="root@example.com"))
    assert bot.incident(1).phase == "investigating"
    assert sink.unread() == []


def test_a_reply_from_the_on_call_person_stops_the_escalation(bot, sink):
    _declare(bot)
    sink.take(2)
    bot.clock.set(utc(2026, 3, 23, 9, 5))
    bot.receive(message("Re: [INC-1] Checkout failing",
                        state("SEV1", "investigating", "olga@example.com"),
                        sender="olga@example.com", in_reply_to="root@example.com"))
    sink.take(1)
    bot.tick(utc(2026, 3, 23, 9, 29))
    assert sink.unread() == []


def test_pages_outside_the_directory_and_allowed_senders_are_refused(bot, sink):
    _declare(bot, page="mallory@evil.example.net, tara@example.com, nosuchservice")
    mails = sink.take(2)
    ack = mails[0]
    assert ack.kind == "ack"
    assert ("  - NOT paged: mallory@evil.example.net: not in the experts directory nor an "
            "allowed sender") in ack.text
    assert "  - NOT paged: nosuchservice: no such service in the experts directory" in ack.text
    assert "  - Tara Singh at tara@example.com" in ack.text  # no pager: her address
    assert mails[1].rcpt_tos == ["tara@example.com"]
    bot.tick(utc(2026, 3, 23, 9, 29))  # a page to a person does not escalate
    assert sink.unread() == []
    # Naming a stranger in `Page:` does not let them write to the incident.
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="resolved"),
                        sender="mallory@evil.example.net", in_reply_to="root@example.com"))
    assert bot.incident(1).status == "open" and sink.unread() == []


def test_pages_obey_the_hourly_cap_per_address(tmp_path, make_bot, sink):
    path = write_config(tmp_path / "capped", sink.port, digest_time="23:30",
                        services=SERVICES)
    path.write_text(path.read_text().replace("max_mail_per_address_per_hour = 1000",
                                             "max_mail_per_address_per_hour = 2"))
    bot = make_bot("capped")
    for n in (1, 2, 3):
        _declare(bot, mid=f"root{n}")
    mails = sink.take(len(sink.unread()))
    assert sum(1 for m in mails if m.rcpt_tos == [PAGER]) == 2
    assert bot.incident(3).pages[0].note == "hourly cap reached: not sent"
    third_ack = [m for m in mails if m.kind == "ack"][2]
    assert "NOT paged: Olga Petrova: hourly cap reached: not sent" in third_ack.text


def test_a_low_severity_page_does_not_escalate(bot, sink):
    _declare(bot, severity="SEV3")
    sink.take(2)
    bot.tick(utc(2026, 3, 23, 10, 0))
    assert [m.kind for m in sink.unread() if m.kind == "page"] == []


def test_page_alone_in_a_reply_is_a_comment_that_pages(bot, sink):
    bot.clock.set(T0)
    bot.receive(message("[DECLARE] Checkout failing", declaration("SEV1"), message_id="root"))
    sink.take(1)
    bot.clock.set(utc(2026, 3, 23, 9, 2))
    bot.receive(message("Re: [INC-1] Checkout failing", "Page: checkout",
                        in_reply_to="root@example.com"))
    kinds = {m.kind: m for m in sink.take(len(sink.unread()))}
    assert kinds["page"].rcpt_tos == [PAGER]
    assert bot.incident(1).timeline[-1].kind == "paged"


def test_acks_name_whoever_is_on_call_at_the_time(bot, sink):
    bot.clock.set(T0)  # Olga's week
    bot.receive(message("[DECLARE] Checkout failing", declaration("SEV2"), message_id="root"))
    [ack] = sink.take(1)
    assert "  - Olga Petrova <olga@example.com>: checkout on-call\n" in ack.text
    assert f"  - Kim Contractor <{CONTRACTOR}>: checkout rotation\n" in ack.text
    # Monday 30 March 09:00 in Berlin (07:00 UTC, summer time since Sunday): Kim's week.
    bot.clock.set(utc(2026, 3, 30, 7, 0))
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="identified"),
                        in_reply_to="root@example.com"))
    update = [m for m in sink.take(len(sink.unread())) if m.kind == "ack"][0]
    assert f"On call: checkout: Kim Contractor <{CONTRACTOR}>" in update.text


def test_an_escalation_is_not_repeated_after_a_restart(make_bot, sink):
    bot = make_bot(digest_time="23:30", services=SERVICES)
    _declare(bot)
    bot.tick(utc(2026, 3, 23, 9, 10))
    assert [m.rcpt_tos for m in sink.take(3) if m.kind == "page"] == [[PAGER], [CONTRACTOR]]
    bot.close()
    again = make_bot()  # the same storage, a new process
    again.tick(utc(2026, 3, 23, 9, 11))
    again.tick(utc(2026, 3, 23, 9, 19))
    assert sink.unread() == []
    assert [p.level for p in again.incident(1).pages] == [0, 1]


def test_a_pagers_reply_answers_the_page_and_gets_no_note(bot, sink):
    """An SMS gateway's "ack" is kept as a comment and answers the page; it is not taught
    the email language (that note would cost the phone several text messages)."""
    _declare(bot)
    sink.take(2)
    bot.clock.set(utc(2026, 3, 23, 9, 3))
    bot.receive(message("Re: PAGE [INC-1] SEV1: Checkout failing", "ack on it",
                        sender=PAGER, in_reply_to="root@example.com"))
    incident = bot.incident(1)
    assert incident.timeline[-1].kind == "comment"
    assert all(p.answered_at is not None for p in incident.pages)
    assert sink.unread() == []
