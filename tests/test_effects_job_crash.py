"""A scheduled job's mail goes out once when the job fails at any step of the commit
protocol (mailbot/effects.py): the journal finishes it at the next start, and the slot
is not run again."""

from __future__ import annotations

import pytest

from mailbot import faults

from tests.support.bot import declaration, message, utc


@pytest.fixture(autouse=True)
def disarm():
    yield
    faults.arm(None)


@pytest.mark.parametrize("point", ["committed", "index-written", "enqueued"])
def test_a_digest_failing_at_each_step_is_sent_once(make_bot, sink, caplog, point):
    bot = make_bot()
    bot.tick(utc(2026, 3, 23, 7, 30))  # records when the scheduler began; nothing due
    faults.arm(f"{point}:1:raise")  # the digest's commit is the next to pass
    assert "job:digest:2026-03-23" not in bot.tick(utc(2026, 3, 23, 8, 0))
    assert f"injected fault at {point}" in caplog.text  # the digest's job failed there
    faults.arm(None)
    # Not finished: its journal entry stays until its index records and mail are written.
    assert "job:digest:2026-03-23" in [key for key, *_ in bot.rt.store.pending_journal()]
    # The same process goes on: a message's commit lets finished journal entries go.
    bot.receive(message("[DECLARE] checkout down", declaration(),
                        message_id="decl"))
    bot.close()
    back = make_bot()  # recover() finishes what the failed job left in the journal
    back.rt.outbox.deliver_due()
    back.tick(utc(2026, 3, 23, 8, 5))
    back.tick(utc(2026, 3, 23, 12, 0))
    digests = [m for m in sink.received if m.kind == "digest"]
    assert len(digests) == 1
    assert len({m.message["Message-ID"] for m in digests}) == 1
