"""Fixtures shared by every test: the SMTP sink, in-process daemons, and mailbot runtimes
on a simulated clock. Fixtures for one folder's tests live in that folder's conftest.py
(tests/ingress/: a private Dovecot; tests/system/: a private Postfix)."""

from __future__ import annotations

import pytest

from mailbot.clock import FakeClock
from mailbot.daemon import Daemon
from mailbot.runtime import build_runtime
from tests.support import SmtpSink, free_port, load
from tests.support import bot as bots_on_a_clock


@pytest.fixture
def sink():
    """A real SMTP sink on loopback, the relay mailbot delivers to; stopped afterwards."""
    s = SmtpSink().start()
    yield s
    s.stop()


@pytest.fixture
def make_daemon(tmp_path, sink):
    """A real daemon in this process (SMTP ingress on loopback, the sink as relay)."""
    started = []

    def make(extra: str = "", name: str = "d", **kw):
        port = free_port()
        workdir = tmp_path / name
        workdir.mkdir()
        config = load(workdir, smtp_port=port, relay_port=sink.port, extra=extra, **kw)
        rt = build_runtime(config)
        d = Daemon(rt)
        d.start()
        d.port = port
        started.append(d)
        return d

    yield make
    for d in started:
        d.shutdown()
        d.rt.close()


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


@pytest.fixture
def clock():
    return FakeClock(bots_on_a_clock.utc(2026, 3, 23, 7, 0))  # Monday 08:00 in Berlin


@pytest.fixture
def make_bot(tmp_path, sink, clock):
    """make_bot(schedule=..., postmortem=..., name=...) -> Bot, a runtime on the simulated
    clock (tests/support/bot.py); same name, same storage."""
    bots = []

    def make(name: str = "bot", **kw) -> bots_on_a_clock.Bot:
        path = tmp_path / name / "mailbot.toml"
        if not path.exists():
            bots_on_a_clock.write_config(tmp_path / name, sink.port, **kw)
        bot = bots_on_a_clock.Bot(bots_on_a_clock.load(path), clock, sink)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.close()


@pytest.fixture
def bot(make_bot):
    return make_bot()
