"""The hot file `db/hot.json`: a TinyDB storage held in memory and written atomically.

Takes TinyDB's reads and writes; hands the file to `durable.write_atomic` (temp file,
fsync, rename, directory fsync) once per outermost batch. A failed write returns memory
to what the file holds, so nothing believes in a commit the disk does not have.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tinydb.storages import Storage

from mailbot.durable import write_atomic
from mailbot.faults import crash_point


class DurableStorage(Storage):
    """TinyDB storage held in memory and written atomically; batches write once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._depth = 0
        self._dirty = False
        self.rolled_back = False  # the last outermost batch was discarded
        self._data: dict[str, Any] = {}
        self._last = ""  # what the file holds: memory goes back to it when a write fails
        self.reload()

    def read(self) -> dict[str, Any]:
        return self._data

    def reload(self) -> None:
        """Read the file (again: another process may have replaced it)."""
        assert self._depth == 0, "not inside a batch"
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            text = ""
        # An atomic rename never leaves a half file; anything unparsable is a bug or
        # outside tampering, and must stop us rather than be silently reset.
        self._data = json.loads(text) if text.strip() else {}
        self._last = text
        self._dirty = False

    def write(self, data: dict[str, Any]) -> None:
        self._data = data
        if self._depth:
            self._dirty = True
        else:
            self._flush()

    @property
    def is_flushed(self) -> bool:
        """Every write so far is on disk (false after a discarded batch)."""
        return not self._dirty and not self.rolled_back

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


def doc_id(key: str) -> int:
    """A TinyDB document id for a string key (a journal key, an address)."""
    # TinyDB wants integer ids; 60 bits of a hash make collisions irrelevant here.
    return int.from_bytes(hashlib.sha1(key.encode("utf-8", "surrogateescape")).digest()[:8],
                          "big") >> 4
