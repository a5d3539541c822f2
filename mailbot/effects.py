"""The commit protocol: the one order in which the effects of a message or of a scheduled
job become durable. The pipeline (a group of messages), every scheduled job and the
start-up recovery all go through it:

    1. commit        `store.commit`: the incident changes and a journal entry holding
                     the index records and the mail, in one atomic write of the hot file
                     (crash point `committed`). Inside `store.group()` the write waits
                     for the group's end: one write for all its commits.
    2. index         the journaled index records, appended to their buckets
                     (`index-written`)
    3. outbox        each mail queued (`enqueued`)
    4. sync          one sync of the file system makes 2 and 3 durable together
    5. finish        `store.finish`: the journal entries may go (at the next commit)

A crash before 1 leaves nothing; one after it is finished at the next start from the
journal (`finish_effects(..., replay=True)`), and steps 2-5 are idempotent. So every
commit has its effect exactly once (tests/system/test_chaos.py, test_crash.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from mailbot.durable import sync_filesystem

if TYPE_CHECKING:
    import datetime as dt

    from mailbot.models import Incident, OutgoingMail
    from mailbot.outbox import Outbox
    from mailbot.store import Store


@dataclass(frozen=True)
class Committed:
    """A commit in the hot file (step 1) whose index records and mail may not be written."""

    key: str
    index: dict[str, dict[str, Any]]  # as journaled: exactly these are written
    outgoing: list[OutgoingMail] = field(default_factory=list)


def stage(store: Store, key: str, *, incidents: Iterable[Incident] = (),
          outgoing: Iterable[OutgoingMail] = (),
          index: dict[str, dict[str, Any]] | None = None,
          next_incident_id: int | None = None, now: dt.datetime | None = None) -> Committed:
    """Step 1 alone, for the pipeline's group (finished by `finish_effects` after the
    group's write)."""
    outgoing = list(outgoing)
    journaled = store.commit(key, incidents=list(incidents), outgoing=outgoing, index=index,
                             next_incident_id=next_incident_id, now=now)
    return Committed(key, journaled, outgoing)


def finish_effects(store: Store, outbox: Outbox, committed: Sequence[Committed], *,
                   replay: bool = False) -> int:
    """Steps 2-5 for commits already in the hot file; returns how many of them had an
    index record or a mail left to write. `replay` (recovery from the journal): what is
    written already is left out, so a repeat adds no lines and sends nothing twice."""
    if not committed:
        return 0
    if replay:
        left = 0
        for entry in committed:
            # `synced`: each record is checked against its bucket (and the bucket fsync'd).
            written = store.write_index_records(entry.index, synced=True)
            queued = [outbox.enqueue(mail, synced=False) for mail in entry.outgoing]
            left += bool(written or any(queued))
    else:
        index: dict[str, dict[str, Any]] = {}
        for entry in committed:
            for message_id, record in entry.index.items():
                index[message_id] = {**index.get(message_id, {}), **record}
        # Without an fsync each: the journal, durable in the hot file, holds all of it
        # until the one sync below, and only then may `finish` let the entries go.
        store.write_index_records(index, synced=False)
        for entry in committed:
            for mail in entry.outgoing:
                outbox.enqueue(mail, synced=False)
        left = len(committed)
    if left:
        # A replay with nothing left (the last group's entries after a clean stop, at
        # every start) wrote nothing: no sync, so a one-message `ingest` pays none.
        sync_filesystem(store.dir)
    for entry in committed:
        store.finish(entry.key)
    return left


def commit_effects(store: Store, outbox: Outbox, key: str, *,
                   incidents: Iterable[Incident] = (),
                   outgoing: Iterable[OutgoingMail] = (),
                   index: dict[str, dict[str, Any]] | None = None,
                   now: dt.datetime | None = None) -> Committed:
    """All five steps for one commit (a scheduled job's): `key` is processed, `incidents`
    saved, `index` recorded and `outgoing` queued, durably, once."""
    committed = stage(store, key, incidents=incidents, outgoing=outgoing, index=index,
                      now=now)
    finish_effects(store, outbox, [committed])
    return committed
