"""The hourly send log: mail sent in the last hour, one hot-file document per address
(its send times), for the per-address cap. A lookup reads one document, not the log."""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Any, Iterable, Mapping

from tinydb.table import Document, Table

from mailbot.models import OutgoingMail
from mailbot.store.hotfile import doc_id

WINDOW = dt.timedelta(hours=1)  # only this much of the log is kept


class SendLog:
    """Send times by address, in a table of the hot file (written with its commit)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def record(self, outgoing: Iterable[OutgoingMail], now: dt.datetime) -> None:
        """Each recipient of `outgoing` was written to at `now`; older than the window
        goes. Call inside the commit's batch."""
        outgoing = list(outgoing)
        horizon = (now - WINDOW).isoformat()
        for rcpt in {r.lower() for mail in outgoing for r in mail.recipients}:
            key = doc_id("sent:" + rcpt)
            doc = self.table.get(doc_id=key)
            times = [t for t in _times(doc) if t >= horizon]
            times += [now.isoformat()] * sum(
                1 for mail in outgoing for r in mail.recipients if r.lower() == rcpt)
            times.sort()  # in order already unless the clock stepped back; `count` bisects
            self.table.upsert(Document({"to": rcpt, "at": times}, doc_id=key))

    def count(self, address: str, since: dt.datetime) -> int:
        """How many mails went to `address` since `since` (only the window is kept)."""
        doc = self.table.get(doc_id=doc_id("sent:" + address.lower()))
        times = doc.get("at", []) if doc else []
        # A busy list address holds an hour of send times: bisect, not a scan per mail.
        return len(times) - bisect.bisect_left(times, since.isoformat())


def _times(doc: Mapping[str, Any] | None) -> list[str]:
    """The send times (ISO strings) a log document holds."""
    return list(doc.get("at", [])) if doc else []
