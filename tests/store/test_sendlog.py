"""`store/sendlog.py`: the hourly send log behind the per-address cap."""

from __future__ import annotations

import datetime as dt
import random

from tinydb import TinyDB
from tinydb.storages import MemoryStorage

from mailbot.models import OutgoingMail
from mailbot.store.sendlog import WINDOW, SendLog

T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)


def mail(n: int, *to: str) -> OutgoingMail:
    return OutgoingMail(name=f"m{n}", mail_from="bot@x", recipients=to, message=b"x")


def test_count_is_what_was_sent_since_even_after_the_clock_stepped_back():
    log = SendLog(TinyDB(storage=MemoryStorage).table("sent"))
    rng = random.Random(7)
    sent: list[dt.datetime] = []
    now = T0
    for n in range(300):
        # Mostly forward; now and then the clock steps back (NTP) by up to 5 minutes.
        now += dt.timedelta(seconds=rng.randint(-300, 40) if n % 17 == 0 else
                            rng.randint(0, 20))
        copies = rng.choice([1, 1, 2])
        log.record([mail(n, *(["List@X"] * copies)), mail(n, "other@x")], now)
        sent += [now] * copies
        horizon = now - WINDOW
        kept = [t for t in sent if t.isoformat() >= horizon.isoformat()]
        for since in (horizon, now - dt.timedelta(minutes=rng.randint(0, 70)), now):
            expected = sum(1 for t in kept if t >= since)
            assert log.count("list@x", since) == expected, (n, since)
    assert log.count("nobody@x", T0) == 0
