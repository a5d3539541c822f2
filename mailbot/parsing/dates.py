"""The message's own `Date:` as a time, only when it is near the time mailbot received it.

Takes a `ParsedMail` and the time received (planning calls this before the rules); hands
on the same mail, or one whose `date` is None with a line in `defects`. A Date far from
its arrival is a broken clock or a forgery, never news: used as a time it misorders the
timeline, and a far one (`Fri, 31 Dec 9999 23:59:59 -2359`) cannot even be shown in
another time zone, so `show` and `publish` raised on it. Its text stays in `headers` (and
the raw message in the archive); `mailbot check` shows it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from mailbot.models import ParsedMail

# Mail legitimately arrives late (a queue held for days, a laptop offline over a long
# holiday); its sender's clock may run ahead by a time zone mistake, rarely more.
DATE_MAX_AGE = dt.timedelta(days=30)
DATE_MAX_AHEAD = dt.timedelta(days=1)


def is_near(date: dt.datetime, received: dt.datetime) -> bool:
    """`date` lies within DATE_MAX_AGE before and DATE_MAX_AHEAD after `received`."""
    try:
        # Aware subtraction works for any two datetimes; converting either one to UTC
        # would overflow at the ends of the calendar.
        offset = date - received
    except (OverflowError, TypeError):
        return False
    return -DATE_MAX_AGE <= offset <= DATE_MAX_AHEAD


def with_usable_date(mail: ParsedMail, received: dt.datetime) -> ParsedMail:
    """`mail`, without its date (kept as text) when that is far from `received`."""
    if mail.date is None or is_near(mail.date, received):
        return mail
    written = mail.header("date") or ""
    note = (f"Date {written[:80]!r} is more than {DATE_MAX_AGE.days} days before or "
            f"{DATE_MAX_AHEAD.days} day after the time received: kept as text, not used "
            "as a time")
    return dataclasses.replace(mail, date=None, defects=(*mail.defects, note))
