"""The iCalendar writer (RFC 5545) for postmortem review invitations: an iTIP (RFC 5546)
METHOD:REQUEST, or METHOD:CANCEL of it, as bytes to attach to a mail. What to invite
whom to, and when, is decided by reminders.py; this module only writes it."""

from __future__ import annotations

import datetime as dt
from typing import Iterable


def ical_text(value: str) -> str:
    """Escape a TEXT value (RFC 5545 3.3.11)."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _param(value: str) -> str:
    # Parameter values may not hold DQUOTE at all; quoting covers ":", ";" and ",".
    return '"' + value.replace('"', "'").replace("\r", " ").replace("\n", " ") + '"'


def fold(line: str) -> bytes:
    """One content line, folded at 75 octets without splitting a UTF-8 sequence."""
    data = line.encode("utf-8")
    out: list[bytes] = []
    limit = 75
    while len(data) > limit:
        cut = limit
        while cut > 0 and (data[cut] & 0xC0) == 0x80:  # continuation byte: back off
            cut -= 1
        out.append(data[:cut])
        data = data[cut:]
        limit = 74  # continuation lines start with one space
    out.append(data)
    return b"\r\n ".join(out) + b"\r\n"


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def review_invitation(*, uid: str, start: dt.datetime, end: dt.datetime, now: dt.datetime,
                      summary: str, description: str, organizer: tuple[str, str],
                      required: Iterable[str], optional: Iterable[str] = (),
                      sequence: int = 0, method: str = "REQUEST") -> bytes:
    """An iTIP (RFC 5546) METHOD:REQUEST invitation or METHOD:CANCEL of it, CRLF lines,
    escaped and folded. The organizer is a person (the postmortem owner), so the meeting
    can be moved and the replies reach someone."""
    cn = f";CN={_param(organizer[0])}" if organizer[0] else ""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//mailbot//postmortem review//EN",
        "CALSCALE:GREGORIAN",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{_utc(now)}",
        f"SEQUENCE:{sequence}",
        f"DTSTART:{_utc(start)}",
        f"DTEND:{_utc(end)}",
        f"SUMMARY:{ical_text(summary)}",
        f"DESCRIPTION:{ical_text(description)}",
        "STATUS:" + ("CANCELLED" if method == "CANCEL" else "CONFIRMED"),
        "TRANSP:OPAQUE",
        f"ORGANIZER{cn}:mailto:{organizer[1]}",
    ]
    for addr in required:
        lines.append("ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;"
                     f"RSVP=TRUE:mailto:{addr}")
    for addr in optional:
        lines.append("ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=OPT-PARTICIPANT;PARTSTAT=NEEDS-ACTION;"
                     f"RSVP=TRUE:mailto:{addr}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return b"".join(fold(line) for line in lines)
