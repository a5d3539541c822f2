"""The incident store on TinyDB; every query lives here.

Takes Incident objects and commit records from the pipeline; hands back Incidents.
Laid out so that the cost of one message does not grow with history:

    db/hot.json            TinyDB: open and resolved incidents, the commit journal,
                           counters, job runs, the hourly send log. Small: rewritten whole
                           on each commit (atomically: temp file, fsync, rename, dir fsync).
    db/closed/NNNN/ID.json TinyDB, one per closed incident: written once when it closes.
    db/index/xyz.log       the Message-ID index (mailbot/appendmap.py): 4096 append-only
                           bucket files, chosen by the first 3 hex digits of sha1(ID); one
                           JSON line per record: processed or not, which incident it
                           belongs to, whether mailbot wrote it. A lookup reads one bucket
                           (~20 KB at 1,000,000 IDs); a write appends to one, so a message
                           creates no index file.

A commit is one atomic rewrite of hot.json that carries the incident changes and a journal
entry (the message key, the index records to write, the mail to queue). Index records and
outbox files are written after it; a crash in between is finished from the journal at the
next start, and those writes are idempotent. So every message has its effect exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document

from mailbot.appendmap import AppendMap
from mailbot.durable import sync_filesystem, write_atomic
from mailbot.faults import crash_point
from mailbot.models import Incident, OutgoingMail

log = logging.getLogger(__name__)


class DurableStorage(Storage):
    """TinyDB storage held in memory and written atomically; batches write once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._depth = 0
        self._dirty = False
        self.rolled_back = False  # the last outermost batch was discarded
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            text = ""
        # An atomic rename never leaves a half file; anything unparsable is a bug or
        # outside tampering, and must stop us rather than be silently reset.
        self._data: dict[str, Any] = json.loads(text) if text.strip() else {}
        self._last = text  # what the file holds: memory goes back to it when a write fails

    def read(self) -> dict[str, Any]:
        return self._data

    def write(self, data: dict[str, Any]) -> None:
        self._data = data
        if self._depth:
            self._dirty = True
        else:
            self._flush()

    def _flush(self) -> None:
        payload = json.dumps(self._data, separators=(",", ":"), ensure_ascii=False)
        try:
            write_atomic(self.path, payload.encode("utf-8"))
        except BaseException:
            # Disk full or the like: memory must not keep commits the file does not have,
            # or a retry would take them for done and drop the messages from the spool.
            self._rollback()
            raise
        self._last = payload
        self._dirty = False
        crash_point("committed")

    def _rollback(self) -> None:
        self._data = json.loads(self._last) if self._last.strip() else {}
        self._dirty = False
        self.rolled_back = True

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one atomic file replacement; if the group raises, or the
        write fails, none of it stays (memory returns to what the file holds)."""
        if self._depth == 0:
            self.rolled_back = False
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0 and self._dirty:
                self._rollback()
            raise
        self._depth -= 1
        if self._depth == 0 and self._dirty:
            self._flush()

    def close(self) -> None:
        pass


class Store:
    """Incidents, the message index, the journal and small counters."""

    def __init__(self, db_dir: Path) -> None:
        self.dir = Path(db_dir)
        self.index_dir = self.dir / "index"
        self.closed_dir = self.dir / "closed"
        for d in (self.dir, self.index_dir, self.closed_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.message_index = AppendMap(self.index_dir, crash_point_name="index-written")
        self._storage: DurableStorage | None = None
        self.db = TinyDB(self.dir / "hot.json", storage=self._make_storage)
        self.incidents = self.db.table("incidents", cache_size=0)
        self.meta = self.db.table("meta", cache_size=0)
        self.journal = self.db.table("journal", cache_size=0)
        # Mail sent in the last hour, one document per address (its send times), for the
        # hourly cap: a lookup reads one document, not the whole log.
        self.sent_log = self.db.table("sent_by_address", cache_size=0)
        # A summary of each recently closed incident, written in the same atomic commit
        # that closes it, so the digest never reads the closed history.
        self.recent = self.db.table("recently_closed", cache_size=0)
        self.lock = threading.RLock()
        self._finished: set[str] = set()  # journal keys done, dropped at the next commit
        # Index records journaled but not yet written to their files: lookups see them, so
        # messages committed together in one group see each other.
        self._unwritten: dict[str, dict[str, Any]] = {}

    def _make_storage(self, path: str | Path) -> DurableStorage:
        self._storage = DurableStorage(path)
        return self._storage

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def group(self) -> Iterator[None]:
        """Commits made inside share one atomic write of the hot file, at the end.
        If the group raises or the write fails, all of its commits are undone."""
        with self.lock:
            unwritten, finished = dict(self._unwritten), set(self._finished)
            try:
                with self._storage.batch():  # type: ignore[union-attr]
                    yield
            except BaseException:
                if self._storage.rolled_back:  # type: ignore[union-attr]
                    # The journal entries the group's first commit removed are back in
                    # memory: they are still done, and go with the next commit.
                    self._unwritten, self._finished = unwritten, finished
                raise

    def is_flushed(self) -> bool:
        """Every commit made so far is on disk (false after a discarded group)."""
        storage = self._storage
        return not storage._dirty and not storage.rolled_back  # type: ignore[union-attr]

    # ------------------------------------------------------------ incidents

    def get(self, incident_id: int) -> Incident | None:
        """The incident, open or archived."""
        with self.lock:
            doc = self.incidents.get(doc_id=incident_id)
        if doc is not None:
            return Incident.from_dict(doc)
        path = self._closed_path(incident_id)
        if path.exists():
            return _read_closed(path)
        return None

    def live_incidents(self) -> list[Incident]:
        """Open and resolved incidents (everything not yet closed), by id."""
        with self.lock:
            docs = list(self.incidents.all())
        return sorted((Incident.from_dict(d) for d in docs), key=lambda i: i.id)

    def closed_incidents(self) -> Iterator[Incident]:
        """Every closed incident, by id (reads one file each: for listings and the site)."""
        paths = sorted(self.closed_dir.glob("*/*.json"), key=lambda p: int(p.stem))
        for path in paths:
            yield _read_closed(path)

    def all_incidents(self) -> Iterator[Incident]:
        """Live incidents, then closed ones, read lazily (callers sort as they need)."""
        live = self.live_incidents()
        live_ids = {i.id for i in live}
        yield from live
        for incident in self.closed_incidents():
            if incident.id not in live_ids:  # a crash may leave a reopened one in both
                yield incident

    def _closed_path(self, incident_id: int) -> Path:
        return self.closed_dir / f"{incident_id // 1000:04d}" / f"{incident_id}.json"

    def allocate_id(self) -> int:
        """The next incident number (persisted with the next commit)."""
        with self.lock:
            doc = self.meta.get(doc_id=1) or {}
            return int(doc.get("next_incident_id", 1))

    # ------------------------------------------------------------ message index

    def message_record(self, message_id: str) -> dict[str, Any] | None:
        """What mailbot knows of a Message-ID (or dedupe key)."""
        if not message_id:
            return None
        with self.lock:
            unwritten = self._unwritten.get(message_id)
        record = self.message_index.get(message_id)
        if unwritten is not None:
            return {**(record or {}), **unwritten}
        return record

    def is_processed(self, key: str) -> bool:
        with self.lock:
            if self.journal.contains(doc_id=_journal_id(key)) and key not in self._finished:
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
                path = self._closed_path(incident.id)
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_closed(path, incident)
        unwritten, finished = dict(self._unwritten), set(self._finished)
        reopened = []
        try:
            with self.lock, self._storage.batch():  # type: ignore[union-attr]
                if self._finished:  # one table rewrite for the whole finished group
                    self.journal.remove(doc_ids=[_journal_id(done) for done in self._finished])
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
                    horizon = (now - dt.timedelta(hours=1)).isoformat()
                    for rcpt in {r.lower() for mail in outgoing for r in mail.recipients}:
                        doc_id = _journal_id("sent:" + rcpt)
                        doc = self.sent_log.get(doc_id=doc_id)
                        times = [t for t in (doc or {}).get("at", []) if t >= horizon]
                        times += [now.isoformat()] * sum(
                            1 for mail in outgoing for r in mail.recipients if r.lower() == rcpt)
                        self.sent_log.upsert(Document({"to": rcpt, "at": times}, doc_id=doc_id))
                self.journal.upsert(Document({
                    "key": key,
                    "index": index,
                    "outgoing": [m.to_dict() for m in outgoing],
                }, doc_id=_journal_id(key)))
                for message_id, record in index.items():
                    kept = self._unwritten.get(message_id, {})
                    self._unwritten[message_id] = {
                        **kept, **{k: v for k, v in record.items() if v is not None}}
        except BaseException:
            if self._storage.rolled_back:  # type: ignore[union-attr]
                # The commit is undone: so are its records, and done work is done again.
                self._unwritten, self._finished = unwritten, finished
            raise
        # Only once the hot file holds a reopened incident may its closed copy go.
        for incident_id in reopened:
            path = self._closed_path(incident_id)
            if path.exists():
                path.unlink()
        return index

    def load_history(self, incidents: Iterator[Incident],
                     index: Iterator[tuple[str, dict[str, Any]]],
                     next_incident_id: int) -> None:
        """Bulk-write a history (imports, benchmarks) in the store's own layout: closed
        incidents to their files, live ones to the hot file, index records as given
        (appended to their buckets, each bucket opened once per 64 MB of records).

        Files are written plainly and made durable by one sync at the end instead of an
        fsync each: for filling an empty store, never while mailbot runs on it."""
        with self.lock, self._storage.batch():  # type: ignore[union-attr]
            for incident in incidents:
                if incident.status == "closed":
                    self._note_closed(incident)
                    path = self._closed_path(incident.id)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(
                        {"incident": {str(incident.id): incident.to_dict()}},
                        separators=(",", ":"), ensure_ascii=False), "utf-8")
                else:
                    self.incidents.upsert(Document(incident.to_dict(), doc_id=incident.id))
            self.meta.upsert(Document({"next_incident_id": next_incident_id}, doc_id=1))
            self.message_index.load(index)
        sync_filesystem(self.dir)

    def _note_closed(self, incident: Incident) -> None:
        closed_at = incident.closed_at or incident.updated_at or dt.datetime.now(dt.timezone.utc)
        items = []
        if incident.postmortem is not None:
            items = [{"text": a.text, "owner": a.owner, "due": a.due.isoformat(),
                      "label": a.label}
                     for a in incident.postmortem.action_items
                     if a.due is not None and a.done_at is None]
        # Kept only while the digest can show it, so the hot file stays small however
        # many incidents close: the closure itself for a few days, action items until
        # they are long overdue.
        keep_until = closed_at + dt.timedelta(days=RECENT_CLOSED_DAYS)
        for item in items:
            due = dt.datetime.fromisoformat(item["due"]).replace(tzinfo=dt.timezone.utc)
            keep_until = max(keep_until, due + dt.timedelta(days=ITEMS_OVERDUE_DAYS))
        self.recent.upsert(Document({
            "id": incident.id, "title": incident.title, "severity": incident.severity,
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "closed_at": closed_at.isoformat(), "items": items,
            "keep_until": keep_until.isoformat(),
        }, doc_id=incident.id))
        expired = [d.doc_id for d in self.recent.all()
                   if d.get("keep_until", d["closed_at"]) < closed_at.isoformat()]
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
        written = self.message_index.put_many(index, sync=synced, skip_unchanged=synced)
        with self.lock:
            for message_id in index:
                self._unwritten.pop(message_id, None)
        return written

    def finish(self, key: str) -> None:
        """Index and outbox are written for `key`; its journal entry may go."""
        with self.lock:
            self._finished.add(key)

    def sent_count(self, address: str, since: dt.datetime) -> int:
        """How many mails went to `address` since `since` (only the last hour is kept)."""
        horizon = since.isoformat()
        address = address.lower()
        with self.lock:
            doc = self.sent_log.get(doc_id=_journal_id("sent:" + address))
        return sum(1 for t in (doc or {}).get("at", []) if t >= horizon)

    # ------------------------------------------------------------ health

    def check_integrity(self) -> list[str]:
        """Problems found in the store (empty when healthy)."""
        problems = []
        with self.lock:
            live = {d.doc_id for d in self.incidents.all()}
            next_id = self.allocate_id()
        for doc_id in live:
            if doc_id >= next_id:
                problems.append(f"incident {doc_id} is not below the next id {next_id}")
            if self._closed_path(doc_id).exists():
                problems.append(f"incident {doc_id} is both live and closed")
        for path in self.closed_dir.glob("*/*.json"):
            try:
                _read_closed(path)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                problems.append(f"{path}: {exc}")
        return problems

    def repair(self) -> None:
        """Finish what a crash interrupted between a closed file and the hot commit."""
        with self.lock:
            for doc in list(self.incidents.all()):
                path = self._closed_path(doc.doc_id)
                if path.exists():
                    if doc.get("status") == "closed":
                        self.incidents.remove(doc_ids=[doc.doc_id])
                    else:
                        path.unlink()


# How long the store keeps a closure's summary for the digest: the closure itself, and
# its action items past their due date (the digest shows neither for longer).
RECENT_CLOSED_DAYS = 3
ITEMS_OVERDUE_DAYS = 28


def _journal_id(key: str) -> int:
    # TinyDB wants integer ids; 60 bits of a hash make collisions irrelevant here.
    return int.from_bytes(hashlib.sha1(key.encode("utf-8", "surrogateescape")).digest()[:8],
                          "big") >> 4


def _write_closed(path: Path, incident: Incident) -> None:
    storage_holder: list[DurableStorage] = []

    def make(p: str | Path) -> DurableStorage:
        s = DurableStorage(p)
        storage_holder.append(s)
        return s

    db = TinyDB(path, storage=make)
    with storage_holder[0].batch():
        db.drop_tables()
        db.table("incident").insert(Document(incident.to_dict(), doc_id=incident.id))


def _read_closed(path: Path) -> Incident:
    db = TinyDB(path, storage=DurableStorage)
    doc = db.table("incident").get(doc_id=int(path.stem))
    if doc is None:
        raise ValueError(f"{path} holds no incident")
    return Incident.from_dict(doc)
