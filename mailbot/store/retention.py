"""How long the summary of a closed incident is kept, and how long the digest shows it.

The store writes a summary of each closure into the hot file (`closed.summary_of`), so
the digest and the action-item reminders never read the closed history; these windows
keep the hot file small however many incidents close. The store keeps a summary a little
longer than anything reads it.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

CLOSURE_SHOWN = dt.timedelta(days=2)  # the digest lists a closure this long
CLOSURE_KEPT = dt.timedelta(days=3)  # the store keeps its summary this long
ITEM_OVERDUE_SHOWN = dt.timedelta(days=7)  # the digest lists an overdue action item
ITEM_OVERDUE_KEPT = dt.timedelta(days=28)  # kept, and chased, this long past due


def keep_until(closed_at: dt.datetime, dues: Iterable[dt.date]) -> dt.datetime:
    """When a closure's summary may go: after the closure and each open item's due date
    are past what anyone shows."""
    until = closed_at + CLOSURE_KEPT
    for due in dues:
        due_at = dt.datetime.combine(due, dt.time(0), tzinfo=dt.timezone.utc)
        until = max(until, due_at + ITEM_OVERDUE_KEPT)
    return until


def is_closure_shown(closed_at: dt.datetime, now: dt.datetime) -> bool:
    """The digest still lists this closure."""
    return now - closed_at <= CLOSURE_SHOWN


def is_item_kept(due: dt.date, now: dt.datetime) -> bool:
    """An open action item of a closed incident still counts (the digest's list)."""
    return due >= (now - ITEM_OVERDUE_KEPT).date()
