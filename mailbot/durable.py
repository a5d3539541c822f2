"""Crash-safe file writes: the one place that knows how to make bytes survive kill -9.

A write goes to a temporary file in the same directory, is fsync'd, renamed over the
target, and the directory is fsync'd so the new name itself is durable (POSIX rename is
atomic, but the directory entry lives in the page cache until the directory is synced).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import ctypes

# Modes of everything under [storage] dir (docs/install.md, "File modes"): the owner and
# the group (`mailbot`, which the MTA's pipe user joins to run `mailbot ingest`) read and
# write, others get nothing. Every command sets STATE_UMASK first, so the umask it was
# started with (Postfix's pipe uses 077) cannot lock the group out.
FILE_MODE = 0o660
STATE_UMASK = 0o007

_counter_lock = threading.Lock()
_counter = 0
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def unique_suffix() -> str:
    """A name fragment unique within this host: pid and a process counter."""
    global _counter
    with _counter_lock:
        _counter += 1
        n = _counter
    return f"{_pid}.{n}"


def other_process_alive(pid: int) -> bool:
    """Whether `pid` is another running process: whether a temporary file named with it
    (see `unique_suffix`) may still be being written. This process's own are not: it
    clears them only where it has none in progress."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def fsync_dir(path: Path) -> None:
    """Make the directory entries of `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray) -> None:
    """Write all of `data` to `fd` (os.write may write less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_synced(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` and fsync it."""
    write_all(fd, data)
    os.fsync(fd)


def write_unsynced(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data` atomically (temp file + rename) but without fsync.

    Survives kill -9 (the page cache outlives the process), not a power cut: only for
    files that a journal entry can rebuild until `sync_filesystem` has run."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.{unique_suffix()}")
    try:
        write_new(tmp, data, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_new(path: Path | str, data: bytes, mode: int = FILE_MODE) -> None:
    """Create `path` (it must not exist) holding `data`; no fsync. Plain os calls: the
    buffered `open()` adds an isatty ioctl, an lseek and a buffer per file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        if mode & ~FILE_MODE:  # wider than state files (a page to serve): past the umask
            os.fchmod(fd, mode)
        write_all(fd, data)
    finally:
        os.close(fd)


def read_whole(path: Path | str) -> bytes:
    """All of `path`'s bytes (os calls only, see `write_new`), also while another
    process or thread appends to it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        # Ask for more than the size seen: an append may land meanwhile. A short read
        # of a regular file is its end.
        want = os.fstat(fd).st_size + 4096
        chunks = [os.read(fd, want)]
        while len(chunks[-1]) == want:
            chunks.append(os.read(fd, want))
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_libc: ctypes.CDLL | Literal[False] | None = None  # None: not probed yet; False: no syncfs


def sync_filesystem(path: Path) -> None:
    """Make everything written on `path`'s file system durable: one syncfs(2) for a whole
    group of files instead of two fsyncs each (falls back to sync(2))."""
    global _libc
    if _libc is None:
        import ctypes

        try:
            # The interpreter's own symbols include libc's: ctypes.util.find_library
            # would import subprocess and run ldconfig, ~40 ms of a one-message ingest.
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.syncfs  # noqa: B018 - probe for the symbol
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _libc.syncfs(fd) != 0:
                import ctypes

                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)
    else:
        os.sync()


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new content."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.{unique_suffix()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        write_synced(fd, data)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def move_durably(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` (same filesystem) and sync both directories."""
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)
    if Path(src).parent != Path(dst).parent:
        fsync_dir(Path(src).parent)


def remove_durably(path: Path) -> None:
    """Unlink `path` (if present) and sync its directory."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(Path(path).parent)
