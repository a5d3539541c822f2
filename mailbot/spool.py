"""The durable spool between ingress and processing.

Takes raw bytes from any ingress and hands SpooledMail to the worker, in arrival order.
A Maildir-like layout under `<storage>/spool/`:

    tmp/     being written (never read by the worker)
    new/     accepted: fsync'd, renamed in, directory fsync'd -> only now may ingress say 250
    failed/  processing raised: the message plus `<name>.error` with the traceback

A message leaves `new/` only after its effects are committed (the pipeline calls
`done_many` for its group).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mailbot.clock import Clock
from mailbot.durable import (FILE_MODE, fsync_dir, move_durably, other_process_alive,
                             read_whole, remove_durably, sync_filesystem, unique_suffix,
                             write_atomic, write_new, write_synced)
from mailbot.faults import crash_point

if TYPE_CHECKING:
    from mailbot.models import SpooledMail

_SOURCES = ("smtp", "lmtp", "imap", "pipe", "retry")


class Spool:
    """put / pending / done / fail, with a wake-up event for the worker."""

    def __init__(self, root: Path, clock: Clock | None = None) -> None:
        self.root = Path(root)
        self.clock = clock or Clock()
        self._last_ns = 0
        self._name_lock = threading.Lock()
        self.tmp = self.root / "tmp"
        self.new = self.root / "new"
        self.failed = self.root / "failed"
        for d in (self.tmp, self.new, self.failed):
            d.mkdir(parents=True, exist_ok=True)
        self.arrived = threading.Event()

    def clean_tmp(self) -> None:
        """Remove writes that never completed (nobody was told 250 for them): those whose
        writer is gone. A file of a live process stays, whoever runs this: a `serve`
        receiving DATA or an `ingest` spooling beside the lock holder is writing it."""
        for leftover in self.tmp.iterdir():
            parts = leftover.name.split(".")  # STAMP.PID.N.SOURCE (see _name)
            pid = parts[1] if len(parts) > 2 else ""
            if pid.isdigit() and other_process_alive(int(pid)):
                continue
            leftover.unlink(missing_ok=True)

    def _name(self, source: str) -> str:
        if source not in _SOURCES:
            raise ValueError(f"unknown source {source!r}")
        # The arrival time first, strictly increasing within this process, so names sort
        # by arrival even when the (injected) clock stands still; the suffix makes them
        # unique across processes.
        with self._name_lock:
            stamp = max(int(self.clock.now().timestamp() * 1e9), self._last_ns + 1)
            self._last_ns = stamp
        return f"{stamp:020d}.{unique_suffix()}.{source}"

    def put(self, raw: bytes, source: str) -> str:
        """Store `raw` durably and return its spool name. Raises OSError if it cannot."""
        name = self._name(source)
        tmp_path = self.tmp / name
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            write_synced(fd, raw)
        except BaseException:
            os.close(fd)
            tmp_path.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.rename(tmp_path, self.new / name)
        fsync_dir(self.new)
        crash_point("spooled")
        self.arrived.set()
        return name

    def put_many(self, raws: list[bytes], source: str) -> list[str]:
        """`put` for a batch (pipe ingest of many files): one file-system sync for all of
        them instead of two fsyncs each; durable when it returns."""
        names = []
        for raw in raws:
            name = self._name(source)
            tmp_path = self.tmp / name
            try:
                write_new(tmp_path, raw)
                os.rename(tmp_path, self.new / name)
            except BaseException:
                tmp_path.unlink(missing_ok=True)
                raise
            names.append(name)
        sync_filesystem(self.root)
        self.arrived.set()
        return names

    def pending(self) -> list[str]:
        """Names waiting in new/, oldest first."""
        return sorted(p.name for p in self.new.iterdir() if not p.name.startswith("."))

    def read(self, name: str) -> SpooledMail:
        # Imported here: `mailbot ingest` beside a running daemon only puts, and an MTA
        # starts it once per message (models costs more to import than the rest of it).
        from mailbot.models import SpooledMail

        path = self.new / name
        raw = read_whole(path)
        stamp, _, rest = name.partition(".")
        received = dt.datetime.fromtimestamp(int(stamp) / 1e9, dt.timezone.utc)
        source = rest.rsplit(".", 1)[-1]
        return SpooledMail(name=name, path=path, raw=raw, received_at=received, source=source)

    def done_many(self, names: list[str]) -> None:
        """The messages' effects are committed: forget them, with one directory sync."""
        removed = False
        for name in names:
            try:
                os.unlink(self.new / name)
                removed = True
            except FileNotFoundError:
                pass
        if removed:
            fsync_dir(self.new)

    def fail(self, name: str, error: str) -> None:
        """Park a message whose processing raised, with the error beside it."""
        write_atomic(self.failed / f"{name}.error", error.encode("utf-8", "replace"))
        move_durably(self.new / name, self.failed / name)

    def failed_names(self) -> list[str]:
        return sorted(p.name for p in self.failed.iterdir()
                      if not p.name.endswith(".error") and not p.name.startswith("."))

    def failure_reason(self, name: str) -> str:
        try:
            return (self.failed / f"{name}.error").read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def retry(self, name: str) -> None:
        """Put a failed message back in line (keeps its original arrival name)."""
        move_durably(self.failed / name, self.new / name)
        remove_durably(self.failed / f"{name}.error")
        self.arrived.set()
