"""The Message-ID index in `db/index/` (an `appendmap.AppendMap`), and its overlay: the
records a commit journaled but has not yet written to their buckets. Lookups see both,
so messages committed together in one group see each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from mailbot.appendmap import AppendMap


class MessageIndex:
    """What mailbot knows of each Message-ID: processed, its incident, written by mailbot.

    Not locked itself: the store holds its lock around the overlay."""

    def __init__(self, directory: Path) -> None:
        self.map = AppendMap(directory, crash_point_name="index-written")
        self.unwritten: dict[str, dict[str, Any]] = {}

    def get(self, message_id: str, unwritten: dict[str, Any] | None) -> dict[str, Any] | None:
        """The written record merged with `unwritten` (the overlay's, read under the lock)."""
        record = self.map.get(message_id)
        if unwritten is not None:
            return {**(record or {}), **unwritten}
        return record

    def journal(self, index: Mapping[str, Mapping[str, Any]]) -> None:
        """Records just committed: seen by lookups until they are written."""
        for message_id, record in index.items():
            kept = self.unwritten.get(message_id, {})
            self.unwritten[message_id] = {
                **kept, **{k: v for k, v in record.items() if v is not None}}

    def written(self, message_ids: Iterable[str]) -> None:
        for message_id in message_ids:
            self.unwritten.pop(message_id, None)
