"""Keeping the directory true: a services.toml entry reviewed longer ago than [oncall]
review_after_days makes mailbot ask the service's owners, once, then every 30 days."""

from __future__ import annotations

import pytest

from tests.support.bot import utc

SERVICES = """
[services.checkout]
description = "Checkout pages and the cart"
reviewed = 2025-12-01
[[services.checkout.experts]]
name = "Olga Petrova"
address = "olga@example.com"
role = "on-call"
pager = "olga@page.example.net"
[[services.checkout.experts]]
name = "Pat Kim"
address = "pat@example.com"
role = "owner"

[services.search]
description = "Product search"
reviewed = 2026-02-01
[[services.search.experts]]
name = "Tara Singh"
address = "tara@example.com"
role = "owner"
"""


@pytest.fixture
def bot(make_bot):
    return make_bot(digest_time="23:30", services=SERVICES)


def test_owner_of_an_overdue_entry_is_asked_to_review_it_once_then_monthly(bot, sink):
    bot.tick(utc(2026, 3, 1, 10, 0))  # 90 days after 2025-12-01: not yet overdue
    assert sink.unread() == []
    bot.tick(utc(2026, 3, 2, 10, 0))  # 91 days
    [mail] = sink.take(1)
    assert mail.kind == "directory_review" and mail.rcpt_tos == ["pat@example.com"]
    assert mail.subject == "Experts directory: please review the entry for checkout"
    assert "last reviewed on 2025-12-01, 91 days ago" in mail.text
    assert "  - Olga Petrova <olga@example.com>: on-call (pager olga@page.example.net)" \
        in mail.text
    assert "  reviewed = 2026-03-02" in mail.text
    for day in (3, 10, 31):
        bot.tick(utc(2026, 3, day, 10, 0))
    assert sink.unread() == []  # search (reviewed 2026-02-01) is within 90 days
    bot.tick(utc(2026, 4, 1, 10, 0))  # 30 days after the first reminder
    assert [m.rcpt_tos for m in sink.take(1)] == [["pat@example.com"]]


def test_a_restart_does_not_repeat_the_reminder(make_bot, bot, sink):
    bot.tick(utc(2026, 3, 2, 10, 0))
    sink.take(1)
    bot.close()
    again = make_bot()  # same storage
    again.tick(utc(2026, 3, 2, 11, 0))
    assert sink.unread() == []
