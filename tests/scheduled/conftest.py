"""Fixtures: a real SMTP sink per test, and mailbot runtimes on a simulated clock."""

from __future__ import annotations

import pytest

from mailbot.clock import FakeClock

from .support import Bot, load, utc, write_config


@pytest.fixture
def clock():
    return FakeClock(utc(2026, 3, 23, 7, 0))  # Monday 08:00 in Berlin


@pytest.fixture
def make_bot(tmp_path, sink, clock):
    """make_bot(schedule=..., postmortem=..., name=...) -> Bot; same name, same storage."""
    bots = []

    def make(name: str = "bot", **kw) -> Bot:
        path = tmp_path / name / "mailbot.toml"
        if not path.exists():
            write_config(tmp_path / name, sink.port, **kw)
        bot = Bot(load(path), clock, sink)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.close()


@pytest.fixture
def bot(make_bot):
    return make_bot()
