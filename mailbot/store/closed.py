"""Closed incidents: one TinyDB file each under `db/closed/NNNN/ID.json`, written once
when the incident closes; and the summary of a closure that the hot file keeps for the
digest (`summary_of`, kept as long as `retention` says).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Iterator

from tinydb import TinyDB
from tinydb.table import Document

from mailbot.models import Incident
from mailbot.store.hotfile import DurableStorage
from mailbot.store.retention import keep_until


class ClosedFiles:
    """The closed incidents' files, a thousand to a folder."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, incident_id: int) -> Path:
        return self.dir / f"{incident_id // 1000:04d}" / f"{incident_id}.json"

    def exists(self, incident_id: int) -> bool:
        return self.path(incident_id).exists()

    def get(self, incident_id: int) -> Incident | None:
        path = self.path(incident_id)
        return read_closed(path) if path.exists() else None

    def paths(self) -> list[Path]:
        return sorted(self.dir.glob("*/*.json"), key=lambda p: int(p.stem))

    def all(self) -> Iterator[Incident]:
        """Every closed incident, by id (reads one file each)."""
        for path in self.paths():
            yield read_closed(path)

    def write(self, incident: Incident) -> None:
        """The incident's file, durably (before the hot file lets it go)."""
        path = self.path(incident.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_closed(path, incident)

    def write_plain(self, incident: Incident) -> None:
        """The incident's file without an fsync: for filling an empty store, synced once
        at the end by the caller."""
        path = self.path(incident.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(
            {"incident": {str(incident.id): incident.to_dict()}},
            separators=(",", ":"), ensure_ascii=False), "utf-8")

    def remove(self, incident_id: int) -> None:
        path = self.path(incident_id)
        if path.exists():
            path.unlink()


def summary_of(incident: Incident) -> dict[str, Any]:
    """What the digest and the action-item reminders need of a closure, and until when
    the hot file keeps it."""
    closed_at = incident.closed_at or incident.updated_at or dt.datetime.now(dt.timezone.utc)
    open_items = [a for a in (incident.postmortem.action_items if incident.postmortem else ())
                  if a.due is not None and a.done_at is None]
    items = [{"text": a.text, "owner": a.owner, "due": a.due.isoformat(), "label": a.label}
             for a in open_items if a.due is not None]
    until = keep_until(closed_at, (a.due for a in open_items if a.due is not None))
    return {
        "id": incident.id, "title": incident.title, "severity": incident.severity,
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "closed_at": closed_at.isoformat(), "items": items,
        "keep_until": until.isoformat(),
    }


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


def read_closed(path: Path) -> Incident:
    db = TinyDB(path, storage=DurableStorage)
    doc = db.table("incident").get(doc_id=int(path.stem))
    if doc is None:
        raise ValueError(f"{path} holds no incident")
    return Incident.from_dict(doc)
