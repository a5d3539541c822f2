"""The first start of a new install after digest_time does not mail the list a "no open
incidents" digest at once: that slot was due before mailbot was there. A store with a
history still gets a digest it missed while down (test_scheduler.py has the restart)."""

from __future__ import annotations

import subprocess
import sys

from tests.support import DECLARATION_BODY, REPO, free_port, message, write_config
from tests.support.bot import utc
from tests.test_cli_tick import kinds


def _midnight_config(tmp_path):
    """The digest is due at 00:00 UTC: always in the past when the test runs."""
    return write_config(tmp_path, smtp_port=free_port(),
                        extra='[schedule]\ntimezone = "UTC"\ndigest_time = "00:00"\n')


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], input=stdin,
                          capture_output=True, cwd=REPO, timeout=120)


def test_the_first_tick_of_an_empty_store_after_digest_time_sends_no_digest(tmp_path):
    cfg = _midnight_config(tmp_path)
    out = run("tick", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    sent = tmp_path / "var" / "outbox-sent" / "new"
    assert not sent.exists() or kinds(tmp_path) == []
    assert run("tick", "--config", str(cfg)).returncode == 0  # nor on the next minute
    assert not sent.exists() or kinds(tmp_path) == []


def test_a_first_ingest_after_digest_time_then_tick_sends_no_digest_at_once(tmp_path):
    """The order docs/install.md suggests: check-config, a test message through ingest,
    then the service. That message came after today's slot: nothing was missed."""
    cfg = _midnight_config(tmp_path)
    declared = run("ingest", "-", "--config", str(cfg),
                   stdin=message("[DECLARE] testing the install", DECLARATION_BODY,
                                 message_id="h1@x"))
    assert declared.returncode == 0, declared.stderr
    assert run("tick", "--config", str(cfg)).returncode == 0
    assert kinds(tmp_path) == ["ack"]


def test_a_store_with_history_still_gets_the_digest_it_missed(make_bot, sink):
    """A store upgraded with an incident declared before today's slot (09:00 Berlin,
    08:00 UTC) and no scheduler record yet: today's digest was missed and runs late."""
    from tests.support.bot import declaration, message as scheduled_message

    bot = make_bot()
    bot.clock.set(utc(2026, 3, 22, 15, 0))
    bot.receive(scheduled_message("[DECLARE] before the upgrade", declaration()))
    assert [m.kind for m in sink.take(1)] == ["ack"]
    assert "job:digest:2026-03-23" in bot.tick(utc(2026, 3, 23, 10, 0))
    assert sorted(m.kind for m in sink.take(2)) == ["digest", "reminder_stale"]


def test_a_new_install_gets_its_first_digest_the_next_day(make_bot, sink):
    bot = make_bot()  # digest at 09:00 Europe/Berlin, 08:00 UTC
    assert "job:digest:2026-03-23" not in bot.tick(utc(2026, 3, 23, 10, 0))
    bot.close()
    again = make_bot()  # a restart the same day changes nothing
    assert "job:digest:2026-03-23" not in again.tick(utc(2026, 3, 23, 11, 0))
    assert "job:digest:2026-03-24" in again.tick(utc(2026, 3, 24, 8, 0))
    assert [m.kind for m in sink.received] == ["digest"]
