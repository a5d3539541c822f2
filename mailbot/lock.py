"""The writer lock: one process at a time processes the spool and writes the store.

`mailbot serve` holds it for its lifetime; `mailbot ingest` takes it if it is free and
otherwise leaves what it spooled for the running daemon.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mailbot.durable import FILE_MODE


class WriterLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, blocking: bool = False) -> bool:
        """Take the lock; False if another process holds it (when not blocking)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        # Written over the old pid, then cut to length: truncating to zero first makes
        # ext4 (auto_da_alloc) flush the file on close, a disk wait in every command.
        pid = f"{os.getpid()}\n".encode()
        os.pwrite(fd, pid, 0)
        os.ftruncate(fd, len(pid))
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        if not self.acquire(blocking=True):
            raise RuntimeError("lock not acquired")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
