"""A persistent key -> record map in 4096 append-only bucket files: few file creations.

Used for the message index (`db/index/`) and the outbox's sent markers (`outbox/sent/`),
where one small file per key cost a file creation (and mkdirs) per message, the largest
part of a message's file-system cost. Layout:

    <dir>/xyz.log     the records of every key whose sha1 starts with the hex digits xyz

4096 buckets in one flat directory: at 1,000,000 keys a bucket holds ~250 records
(~20 KB), so a lookup reads one small file whatever the history; and a directory of 4096
names is small for ext4's hashed directories, so subdirectories would only add mkdirs.
Buckets are created on first use; after that a write is an append to an existing file.

Each record is one line, written as `"\\n" + json([key, {field: value, ...}])` (compact,
ASCII), so a record *starts* with a newline. Reading a key merges its records in file
order: later fields override earlier ones, and `None` never overrides (it is not even
written). A record that would carry no field is not written.

Torn and garbage tails: appends are not fsync'd (callers make them durable with one
`durable.sync_filesystem` before they drop the journal entry that can replay them), so a
kill or a power cut may leave a half record, or NUL bytes, at the end of a bucket. The
next record starts with its own "\\n", so such a tail never swallows it; a reader takes
from each line the one JSON value `[key, {...}]` at its start and ignores what follows it
(NULs where a later, unsynced record was lost must not take a whole, synced record with
them), and skips lines that do not start with one: a proper prefix of a record never
parses (its closing "]" is its last byte) and NUL is not valid JSON. Appends never touch
bytes already written. Replaying records is harmless: merging the same fields again
gives the same result.

Lookups read the bucket's bytes and look for json(key) preceded by "\\n[" and followed by
",": that can only be where a record of that key starts (JSON escapes every newline and
quote inside a string), so only those lines are decoded.

Readers take no lock: a reader racing an append may see a half-written last line, which
does not parse and is skipped (for that reader the record is not there yet, as if it had
read a moment earlier; once `put_many` has returned, every reader sees it). Writers are
serialised by a lock per map; each bucket's records of one call go in one O_APPEND write.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping

from mailbot.durable import FILE_MODE, fsync_dir, read_whole, write_all
from mailbot.faults import crash_point

BUCKET_DIGITS = 3  # 16**3 = 4096 buckets
SUFFIX = ".log"
_LOAD_BUFFER = 64 << 20  # bytes buffered by `load` before it appends them


def _encode_key(key: str) -> bytes:
    # ensure_ascii: one spelling per key (the needle), whatever the characters.
    return json.dumps(key, ensure_ascii=True).encode("ascii")


def _fields(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}


class AppendMap:
    """key (str) -> record (dict of JSON values), see the module docstring."""

    def __init__(self, directory: str | Path, *, crash_point_name: str | None = None) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._prefix = os.path.join(str(self.dir), "")  # str paths: pathlib costs ~1.5 us
        self._crash_point = crash_point_name
        self._lock = threading.Lock()  # writers only; readers never wait

    # ------------------------------------------------------------ layout

    def bucket_of(self, key: str) -> str:
        # surrogatepass: any str hashes (Message-IDs may carry surrogate escapes).
        digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()
        return digest[:BUCKET_DIGITS]

    def bucket_path(self, key: str) -> Path:
        return Path(self._path(self.bucket_of(key)))

    def _path(self, bucket: str) -> str:
        return self._prefix + bucket + SUFFIX

    # ------------------------------------------------------------ reading

    def get(self, key: str) -> dict[str, Any] | None:
        """The merged record of `key`, or None if it has none."""
        data = _read_all(self._path(self.bucket_of(key)))
        return _lookup(data, key, _encode_key(key)) if data else None

    def items(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """Every key with its merged record (reads every bucket; for checks and tools)."""
        for path in sorted(self.dir.glob("*" + SUFFIX)):
            merged: dict[str, dict[str, Any]] = {}
            for key, fields in _records(_read_all(path)):
                merged.setdefault(key, {}).update(fields)
            yield from merged.items()

    # ------------------------------------------------------------ writing

    def put(self, key: str, record: Mapping[str, Any], *, sync: bool = False,
            skip_unchanged: bool = False) -> int:
        return self.put_many({key: record}, sync=sync, skip_unchanged=skip_unchanged)

    def put_many(self, records: Mapping[str, Mapping[str, Any]], *, sync: bool = False,
                 skip_unchanged: bool = False) -> int:
        """Append one line per record to its bucket (each bucket opened once).

        Not fsync'd unless `sync`: then the touched buckets are, and the directory if a
        bucket was created. `skip_unchanged` reads each touched bucket first and leaves out
        records that would change nothing (worth it where replays are expected; a lookup's
        cost per bucket). Returns how many records were appended. If armed, the crash point
        is passed once per record, after its bucket's write."""
        # Encoded first: a value JSON cannot carry fails the call before anything is written.
        by_bucket: dict[str, list[tuple[str, bytes]]] = {}
        for key, record in records.items():
            fields = _fields(record)
            if fields:
                by_bucket.setdefault(self.bucket_of(key), []).append((key, _line(key, fields)))
        written = 0
        created = False
        with self._lock:
            for bucket, entries in by_bucket.items():
                path = self._path(bucket)
                if skip_unchanged:
                    data = _read_all(path)
                    entries = [(k, line) for k, line in entries if _changes(data, k, line)]
                    if not entries:
                        continue
                new = _append(path, b"".join(line for _, line in entries), sync=sync)
                created = created or new
                written += len(entries)
                if self._crash_point:
                    for _ in entries:
                        crash_point(self._crash_point)
            if sync and created:
                fsync_dir(self.dir)
        return written

    def load(self, records: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Bulk-append records (imports, benchmarks): buffered per bucket, each bucket
        opened once per 64 MB of records. Not synced: the caller syncs once at the end."""
        buffers: dict[str, bytearray] = {}
        size = 0
        count = 0
        with self._lock:
            for key, record in records:
                fields = _fields(record)
                if not fields:
                    continue
                line = _line(key, fields)
                buffers.setdefault(self.bucket_of(key), bytearray()).extend(line)
                size += len(line)
                count += 1
                if size >= _LOAD_BUFFER:
                    self._flush(buffers)
                    buffers, size = {}, 0
            self._flush(buffers)
        return count

    def _flush(self, buffers: dict[str, bytearray]) -> None:
        for bucket, data in buffers.items():
            _append(self._path(bucket), data, sync=False)


def _line(key: str, fields: dict[str, Any]) -> bytes:
    return b"\n[" + _encode_key(key) + b"," + json.dumps(
        fields, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"]"


def _append(path: str | Path, payload: bytes | bytearray, *, sync: bool) -> bool:
    """Append `payload` in one O_APPEND write (and fsync it if `sync`); with `sync`,
    returns whether the file was empty before (new: its directory entry needs a sync)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        new = sync and os.fstat(fd).st_size == 0
        write_all(fd, payload)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return new


def _read_all(path: str | Path) -> bytes:
    """A bucket's bytes; b"" for a bucket not created yet."""
    try:
        return read_whole(path)
    except FileNotFoundError:
        return b""


def _lookup(data: bytes, key: str, needle: bytes) -> dict[str, Any] | None:
    """Merge the records of `key` (`needle`: its JSON) found in a bucket's bytes."""
    merged: dict[str, Any] | None = None
    after = len(needle)
    pos = data.find(needle)
    while pos != -1:
        # A record of `key` starts "\n[" + needle + ",". (Searching for the bare needle is
        # about twice as fast as for the framed one: fewer of its bytes are common.)
        if data[pos - 2:pos] == b"\n[" and data[pos + after:pos + after + 1] == b",":
            end = data.find(b"\n", pos)
            parsed = _parse(data[pos - 1:] if end == -1 else data[pos - 1:end])
            if parsed is not None and parsed[0] == key:
                if merged is None:
                    merged = {}
                merged.update(parsed[1])
        pos = data.find(needle, pos + after)
    return merged


def _records(data: bytes) -> Iterable[tuple[str, dict[str, Any]]]:
    for line in data.split(b"\n"):
        parsed = _parse(line)
        if parsed is not None:
            yield parsed


_decode = json.JSONDecoder().raw_decode


def _parse(line: bytes) -> tuple[str, dict[str, Any]] | None:
    """`[key, {fields}]` from the start of one line, None fields dropped; None if torn or
    garbage. Whatever follows the record's closing "]" is ignored: a power cut can leave
    NUL bytes (or part of a later record) right after a whole, synced record."""
    if not line.startswith(b"["):
        return None
    text = line.decode("latin-1")  # 1:1, never fails; a record is ASCII (checked below)
    try:
        value, end = _decode(text)
    except ValueError:  # torn (a proper prefix of a record never parses), NUL, garbage
        return None
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str)
            or not isinstance(value[1], dict) or not line[:end].isascii()):
        return None
    return value[0], _fields(value[1])


def _changes(data: bytes, key: str, line: bytes) -> bool:
    """Would appending `line` (a record of `key`) change what `key` reads as?"""
    old = _lookup(data, key, _encode_key(key)) or {}
    parsed = _parse(line[1:])
    fields = parsed[1] if parsed else {}
    return any(k not in old or old[k] != v for k, v in fields.items())
