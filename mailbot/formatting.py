"""How times and durations read, in mail, on the site and on the command line: one
spelling everywhere, so "3h 5m" in an acknowledgement is "3h 5m" on the board."""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr
from typing import Any


def format_duration(delta: dt.timedelta | None, *, missing: str = "") -> str:
    """A short human duration: 45s -> "<1m", "42m", "3h 12m", "2d 4h"; None -> `missing`."""
    if delta is None:
        return missing
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "<1m"
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def format_when(value: dt.datetime | None, tz: Any = None, *, missing: str = "") -> str:
    """An instant as "2026-11-30 16:00 CET" in `tz` (as stored when None); None -> `missing`."""
    if value is None:
        return missing
    if tz is not None:
        try:
            value = value.astimezone(tz)
        except (OverflowError, ValueError):
            # A far Date stored by an older mailbot: shown in its own offset.
            return value.isoformat(" ", "minutes")
    return value.strftime("%Y-%m-%d %H:%M %Z")


def fit_person(value: str, width: int) -> str:
    """A person ("Name <address>", an address or a name) in `width` columns for a table:
    the name is cut ("Alexandra K… <a@x>"), then dropped; an address is never cut, so it
    can still be copied (a row may overflow its column rather)."""
    if len(value) <= width:
        return value
    name, address = parseaddr(value)
    if "@" not in address:
        return value[:width - 1] + "…"
    room = width - len(address) - 3  # " <" and ">"
    name = name.strip()
    if name and room >= 4:
        return f"{name[:room - 1].rstrip()}… <{address}>"
    return address
