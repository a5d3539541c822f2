"""Pipe ingress: `mailbot ingest FILE...` / `-`, for .forward, procmail and MTA pipes.

Spools each message durably; the exit status tells the MTA whether it may forget it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

from mailbot.spool import Spool


class InputError(Exception):
    """A file could not be read: the caller's mistake, not a reason to retry."""


def read_inputs(paths: list[str], stdin: BinaryIO | None = None) -> list[tuple[str, bytes]]:
    """Read every message first, so a bad path spools nothing at all."""
    messages = []
    for path in paths:
        if path == "-":
            stream = stdin or sys.stdin.buffer
            messages.append(("<stdin>", stream.read()))
            continue
        try:
            messages.append((path, Path(path).read_bytes()))
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror}") from None
    for label, raw in messages:
        if not raw.strip():
            raise InputError(f"{label}: empty message")
    return messages


def spool_inputs(spool: Spool, messages: list[tuple[str, bytes]]) -> list[str]:
    """Put each message in the spool (raises OSError when the disk cannot keep it)."""
    if len(messages) == 1:
        # An MTA's pipe: two fsyncs of our own files cost less than a syncfs, which
        # waits for whatever else is dirty on the file system.
        return [spool.put(messages[0][1], "pipe")]
    return spool.put_many([raw for _, raw in messages], "pipe")


def open_spool(spool_dir: Path) -> Spool:
    """The spool, for a process that only spools while another one holds the writer lock
    and processes."""
    return Spool(spool_dir)
