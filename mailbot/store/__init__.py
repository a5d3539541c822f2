"""The incident store on TinyDB; every query lives here.

Takes Incident objects and commit records from the pipeline; hands back Incidents.
Laid out so that the cost of one message does not grow with history:

    db/hot.json            TinyDB (`hotfile.py`): open and resolved incidents, the commit
                           journal, counters, job runs, the hourly send log (`sendlog.py`)
                           and closure summaries (`closed.py`, kept as `retention.py`
                           says). Small: rewritten whole on each commit (atomically: temp
                           file, fsync, rename, dir fsync).
    db/closed/NNNN/ID.json TinyDB, one per closed incident (`closed.py`): written once
                           when it closes.
    db/index/xyz.log       the Message-ID index (`index.py`, on mailbot/appendmap.py):
                           4096 append-only bucket files, chosen by the first 3 hex digits
                           of sha1(ID); one JSON line per record: processed or not, which
                           incident it belongs to, whether mailbot wrote it. A lookup reads
                           one bucket (~20 KB at 1,000,000 IDs); a write appends to one, so
                           a message creates no index file.

A commit is one atomic rewrite of hot.json that carries the incident changes and a journal
entry (the message key, the index records to write, the mail to queue). Index records and
outbox files are written after it; a crash in between is finished from the journal at the
next start, and those writes are idempotent. So every message has its effect exactly once.
`Store` is the one entry point; the modules beside it each keep one part of the layout.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tinydb import TinyDB
from tinydb.table import Document

from mailbot.durable import sync_filesystem
from mailbot.models import Incident, OutgoingMail
from mailbot.store.closed import ClosedFiles, read_closed, summary_of
from mailbot.store.hotfile import DurableStorage, doc_id
from mailbot.store.index import MessageIndex
from mailbot.store.sendlog import SendLog

__all__ = ["Store", "DurableStorage"]

log = logging.getLogger(__name__)


class Store:
    """Incidents, the message index, the journal and small counters."""

    def __init__(self, db_dir: Path) -> None:
        self.dir = Path(db_dir)
        self.index_dir = self.dir / "index"
        self.closed_dir = self.dir / "closed"
        for d in (self.dir, self.index_dir, self.closed_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.index = MessageIndex(self.index_dir)
        self.closed = ClosedFiles(self.closed_dir)
        self._storage: DurableStorage | None = None
        self.db = TinyDB(self.dir / "hot.json", storage=self._make_storage)
        self.incidents = self.db.table("incidents", cache_size=0)
        self.meta = self.db.table("meta", cache_size=0)
        self.journal = self.db.table("journal", cache_size=0)
        self.sent = SendLog(self.db.table("sent_by_address", cache_size=0))
        # A summary of each recently closed incident, written in the same atomic commit
        # that closes it, so the digest never reads the closed history.
        self.recent = self.db.table("recently_closed", cache_size=0)
        self.lock = threading.RLock()
        self._finished: set[str] = set()  # journal keys done, dropped at the next commit

    def reload(self) -> None:
        """The hot file as it is on disk now: for a process that has just taken the
        writer lock after building its Runtime (another holder may have committed)."""
        with self.lock:
            self.storage.reload()

    def _make_storage(self, path: str | Path) -> DurableStorage:
        self._storage = DurableStorage(path)
        return self._storage

    @property
    def storage(self) -> DurableStorage:
        assert self._storage is not None  # TinyDB made it in __init__
        return self._storage

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def group(self) -> Iterator[None]:
        """Commits made inside share one atomic write of the hot file, at the end.
        If the group raises or the write fails, all of its commits are undone."""
        with self.lock:
            unwritten, finished = dict(self.index.unwritten), set(self._finished)
            try:
                with self.storage.batch():
                    yield
            except BaseException:
                if self.storage.rolled_back:
                    # The journal entries the group's first commit removed are back in
                    # memory: they are still done, and go with the next commit.
                    self.index.unwritten, self._finished = unwritten, finished
                raise

    def is_flushed(self) -> bool:
        """Every commit made so far is on disk (false after a discarded group)."""
        return self.storage.is_flushed

    # ------------------------------------------------------------ incidents

    def get(self, incident_id: int) -> Incident | None:
        """The incident, open or archived."""
        with self.lock:
            doc = self.incidents.get(doc_id=incident_id)
        if doc is not None:
            return Incident.from_dict(doc)
        return self.closed.get(incident_id)

    def live_incidents(self) -> list[Incident]:
        """Open and resolved incidents (everything not yet closed), by id."""
        with self.lock:
            docs = list(self.incidents.all())
        return sorted((Incident.from_dict(d) for d in docs), key=lambda i: i.id)

    def closed_incidents(self) -> Iterator[Incident]:
        """Every closed incident, by id (reads one file each: for listings and the site)."""
        return self.closed.all()

    def all_incidents(self) -> Iterator[Incident]:
        """Live incidents, then closed ones, read lazily (callers sort as they need)."""
        live = self.live_incidents()
        live_ids = {i.id for i in live}
        yield from live
        for incident in self.closed_incidents():
            if incident.id not in live_ids:  # a crash may leave a reopened one in both
                yield incident

    def allocate_id(self) -> int:
        """The next incident number (persisted with the next commit)."""
        with self.lock:
            doc = self.meta.get(doc_id=1)
            return int(doc.get("next_incident_id", 1)) if doc else 1

    # ------------------------------------------------------------ message index

    def message_record(self, message_id: str) -> dict[str, Any] | None:
        """What mailbot knows of a Message-ID (or dedupe key)."""
        if not message_id:
            return None
        with self.lock:
            unwritten = self.index.unwritten.get(message_id)
        return self.index.get(message_id, unwritten)

    def is_processed(self, key: str) -> bool:
        with self.lock:
            if self.journal.contains(doc_id=doc_id(key)) and key not in self._finished:
                return True
        record = self.message_record(key)
        return bool(record and record.get("processed"))

    def incident_for_thread(self, message_ids: tuple[str, ...]) -> int | None:
        """The incident of the nearest message in the thread that belongs to one."""
        for mid in message_ids:
            record = self.message_record(mid)
            if record and record.get("incident"):
                return int(record["incident"])
        return None

    def is_own_message(self, message_id: str) -> bool:
        record = self.message_record(message_id)
        return bool(record and record.get("own"))

    # ------------------------------------------------------------ commits

    def commit(
        self,
        key: str,
        *,
        incidents: list[Incident] = (),  # type: ignore[assignment]
        outgoing: list[OutgoingMail] = (),  # type: ignore[assignment]
        index: dict[str, dict[str, Any]] | None = None,
        next_incident_id: int | None = None,
        now: dt.datetime | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Apply one message's (or job's) effects atomically; see the module docstring.

        `index` maps Message-IDs to records; `key` itself is always recorded as processed.
        Returns the index records as journaled: write exactly those after the commit.
        """
        index = dict(index or {})
        index.setdefault(key, {})
        index[key] = {**index[key], "processed": True}
        # A closed incident leaves the hot file: its own file is written first, so a crash
        # between the two leaves it in both places, and the hot copy wins until cleaned.
        for incident in incidents:
            if incident.status == "closed":
                self.closed.write(incident)
        unwritten, finished = dict(self.index.unwritten), set(self._finished)
        reopened = []
        try:
            with self.lock, self.storage.batch():
                if self._finished:  # one table rewrite for the whole finished group
                    self.journal.remove(doc_ids=[doc_id(done) for done in self._finished])
                self._finished.clear()
                for incident in incidents:
                    if incident.status == "closed":
                        if self.incidents.contains(doc_id=incident.id):
                            self.incidents.remove(doc_ids=[incident.id])
                        self._note_closed(incident)
                    else:
                        self.incidents.upsert(Document(incident.to_dict(), doc_id=incident.id))
                        reopened.append(incident.id)
                        if self.recent.contains(doc_id=incident.id):
                            self.recent.remove(doc_ids=[incident.id])
                if next_incident_id is not None:
                    self.meta.upsert(Document({"next_incident_id": next_incident_id}, doc_id=1))
                if now is not None and outgoing:
                    self.sent.record(outgoing, now)
                self.journal.upsert(Document({
                    "key": key,
                    "index": index,
                    "outgoing": [m.to_dict() for m in outgoing],
                }, doc_id=doc_id(key)))
                self.index.journal(index)
        except BaseException:
            if self.storage.rolled_back:
                # The commit is undone: so are its records, and done work is done again.
                self.index.unwritten, self._finished = unwritten, finished
            raise
        # Only once the hot file holds a reopened incident may its closed copy go.
        for incident_id in reopened:
            self.closed.remove(incident_id)
        return index

    def load_history(self, incidents: Iterator[Incident],
                     index: Iterator[tuple[str, dict[str, Any]]],
                     next_incident_id: int) -> None:
        """Bulk-write a history (imports, benchmarks) in the store's own layout: closed
        incidents to their files, live ones to the hot file, index records as given
        (appended to their buckets, each bucket opened once per 64 MB of records).

        Files are written plainly and made durable by one sync at the end instead of an
        fsync each: for filling an empty store, never while mailbot runs on it."""
        with self.lock, self.storage.batch():
            for incident in incidents:
                if incident.status == "closed":
                    self._note_closed(incident)
                    self.closed.write_plain(incident)
                else:
                    self.incidents.upsert(Document(incident.to_dict(), doc_id=incident.id))
            self.meta.upsert(Document({"next_incident_id": next_incident_id}, doc_id=1))
            self.index.map.load(index)
        sync_filesystem(self.dir)

    def _note_closed(self, incident: Incident) -> None:
        """Keep the closure's summary; summaries nothing shows any more go."""
        summary = summary_of(incident)
        self.recent.upsert(Document(summary, doc_id=incident.id))
        expired = [d.doc_id for d in self.recent.all()
                   if d.get("keep_until", d["closed_at"]) < summary["closed_at"]]
        if expired:
            self.recent.remove(doc_ids=expired)

    def recently_closed(self) -> list[dict[str, Any]]:
        """Summaries of recently closed incidents: id, title, severity, resolved_at,
        closed_at (ISO strings) and action items (text, owner, due)."""
        with self.lock:
            return sorted((dict(d) for d in self.recent.all()), key=lambda d: d["id"])

    def pending_journal(self) -> list[tuple[str, dict[str, dict[str, Any]], list[OutgoingMail]]]:
        """Commits whose index and outbox writes may not have happened yet."""
        with self.lock:
            docs = [d for d in self.journal.all() if d["key"] not in self._finished]
        return [
            (d["key"], d["index"], [OutgoingMail.from_dict(m) for m in d["outgoing"]])
            for d in docs
        ]

    def write_index_records(self, index: dict[str, dict[str, Any]], *,
                            synced: bool = True) -> int:
        """Write index records (appended to their buckets, each bucket opened once).

        `synced=False` (the pipeline's group): no fsync; a later `sync_filesystem` must
        run before `finish` lets the journal entry go. `synced=True` (recovery, scheduled
        jobs): the touched buckets are fsync'd, and records that would change nothing are
        left out, so replaying a journal entry after a crash adds no lines. Returns how
        many records were written."""
        written = self.index.map.put_many(index, sync=synced, skip_unchanged=synced)
        with self.lock:
            self.index.written(index)
        return written

    def finish(self, key: str) -> None:
        """Index and outbox are written for `key`; its journal entry may go."""
        with self.lock:
            self._finished.add(key)

    def sent_count(self, address: str, since: dt.datetime) -> int:
        """How many mails went to `address` since `since` (only the last hour is kept)."""
        with self.lock:
            return self.sent.count(address, since)

    # ------------------------------------------------------------ health

    def check_integrity(self) -> list[str]:
        """Problems found in the store (empty when healthy)."""
        problems = []
        with self.lock:
            live = {d.doc_id for d in self.incidents.all()}
            next_id = self.allocate_id()
        for live_id in live:
            if live_id >= next_id:
                problems.append(f"incident {live_id} is not below the next id {next_id}")
            if self.closed.exists(live_id):
                problems.append(f"incident {live_id} is both live and closed")
        for path in self.closed_dir.glob("*/*.json"):
            try:
                read_closed(path)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                problems.append(f"{path}: {exc}")
        return problems

    def repair(self) -> None:
        """Finish what a crash interrupted between a closed file and the hot commit."""
        with self.lock:
            for doc in list(self.incidents.all()):
                if self.closed.exists(doc.doc_id):
                    if doc.get("status") == "closed":
                        self.incidents.remove(doc_ids=[doc.doc_id])
                    else:
                        self.closed.remove(doc.doc_id)
