"""The append-only bucketed map behind the message index and the sent-markers."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

import mailbot.appendmap as appendmap
from mailbot.appendmap import AppendMap
from mailbot.clock import FakeClock
from mailbot.models import OutgoingMail
from mailbot.outbox import Outbox
from mailbot.store import Store


def same_bucket_keys(m: AppendMap, n: int, prefix: str = "k") -> list[str]:
    """n keys that all land in one bucket (so their lines share a file)."""
    first = f"{prefix}0"
    target = m.bucket_of(first)
    keys, i = [first], 1
    while len(keys) < n:
        key = f"{prefix}{i}"
        if m.bucket_of(key) == target:
            keys.append(key)
        i += 1
    return keys


def test_later_fields_override_earlier_and_none_never_does(tmp_path):
    m = AppendMap(tmp_path)
    assert m.get("a@x") is None
    m.put("a@x", {"processed": True, "outcome": "declare"})
    m.put("a@x", {"incident": 5, "outcome": None})
    m.put_many({"a@x": {"incident": 6, "processed": None}, "b@x": {"own": True}})
    assert m.get("a@x") == {"processed": True, "outcome": "declare", "incident": 6}
    assert m.get("b@x") == {"own": True}
    assert m.get("c@x") is None
    # A record that carries nothing is not written: the key stays unknown.
    assert m.put_many({"c@x": {}, "d@x": {"incident": None}}) == 0
    assert m.get("c@x") is None and m.get("d@x") is None


def test_a_lookup_finds_only_its_own_key_whatever_the_characters(tmp_path):
    m = AppendMap(tmp_path)
    keys = ['a@x', '"a@x"', 'a@x"', '\\"a@x', 'a@x,', '\n["a@x",', 'ключ@пример',
            'x\udcff@y', '<a@x>', 'a@x ', 'A@X', '']
    keys += same_bucket_keys(m, 30)
    m.put_many({k: {"n": i} for i, k in enumerate(keys)})
    for i, k in enumerate(keys):
        assert m.get(k) == {"n": i}, k
    # Every line is one record starting with a newline, whatever the key held.
    data = b"".join(p.read_bytes() for p in tmp_path.glob("*.log"))
    assert data.count(b"\n") == len(keys)


def test_torn_garbage_and_nul_tails_are_skipped_and_later_records_still_read(tmp_path):
    m = AppendMap(tmp_path)
    a, b, c = same_bucket_keys(m, 3)
    path = m.bucket_path(a)
    m.put(a, {"processed": True, "incident": 1})
    full = path.read_bytes()
    tails = [
        b'\n["' + a.encode() + b'",{"incident":9',  # a torn record of the same key
        b"\n[\"" + a.encode() + b"\",{\"incident\":9}",  # torn just before the final "]"
        b"\nnot json at all",
        b'\n[1,2]\n["x"]\n{"k":1}\n["' + a.encode() + b'",5]',  # JSON, but not a record
        b"\n\xff\xfe\x00garbage",  # not UTF-8
        b"\0" * 300,  # what a power cut can leave in an unsynced tail
        b'\n["' + a.encode() + b'",{"incident":9}]'[:-1] + b"\0\0\0",
        b"\0" * 5000 + b'cident":9}]',  # a lost page, then the rest of a later record
    ]
    for n, tail in enumerate(tails):
        with open(path, "ab") as fh:
            fh.write(tail)
        assert m.get(a) == {"processed": True, "incident": 1}, tail
        if n:  # right before the tail: b's last record, whole, must not be lost with it
            assert m.get(b) == {"incident": 100 + n - 1}, tail
        m.put(b, {"incident": 100 + n})
        assert m.get(b) == {"incident": 100 + n}, tail
    # A power cut that extended the file with zeros (size kept, data lost).
    os.truncate(path, path.stat().st_size + 8192)
    assert m.get(b) == {"incident": 100 + len(tails) - 1}
    m.put(c, {"own": True})
    assert m.get(c) == {"own": True}
    assert m.get(a) == {"processed": True, "incident": 1}
    assert path.read_bytes().startswith(full)  # nothing was rewritten, only appended
    assert dict(m.items()) == {a: {"processed": True, "incident": 1},
                               b: {"incident": 100 + len(tails) - 1}, c: {"own": True}}


def test_replaying_the_same_records_is_harmless(tmp_path):
    m = AppendMap(tmp_path)
    records = {f"m{i}@x": {"processed": True, "incident": i % 7} for i in range(200)}
    records["m0@x"] = {"own": True, "incident": None}
    m.put_many(records)
    before = {k: m.get(k) for k in records}
    sizes = {p.name: p.stat().st_size for p in tmp_path.glob("*.log")}
    # As recovery replays a journal: nothing changes, so nothing is appended.
    assert m.put_many(records, sync=True, skip_unchanged=True) == 0
    assert {p.name: p.stat().st_size for p in tmp_path.glob("*.log")} == sizes
    # A plain replay appends duplicates; what a key reads as does not move.
    assert m.put_many(records) == len(records)
    assert {k: m.get(k) for k in records} == before
    # skip_unchanged still writes what does change.
    assert m.put_many({"m1@x": {"incident": 1}, "m2@x": {"incident": 99}},
                      skip_unchanged=True) == 1
    assert m.get("m2@x") == {"processed": True, "incident": 99}


def test_many_keys_spread_over_the_buckets_and_survive_a_reopen(tmp_path):
    m = AppendMap(tmp_path / "idx")
    n = 30_000
    assert m.load((f"hist{i}@bench", {"processed": True, "incident": i}) for i in range(n)) == n
    m.put_many({f"hist{i}@bench": {"own": True} for i in range(0, n, 1000)})
    files = list((tmp_path / "idx").glob("*.log"))
    assert 4000 < len(files) <= 4096  # ~4096 * (1 - e^-7.3) buckets in use
    reopened = AppendMap(tmp_path / "idx")
    for i in range(0, n, 37):
        expected = {"processed": True, "incident": i}
        if i % 1000 == 0:
            expected["own"] = True
        assert reopened.get(f"hist{i}@bench") == expected
    assert reopened.get(f"hist{n}@bench") is None
    assert sum(1 for _ in reopened.items()) == n
    # The bucket is the first 3 hex digits of the key's sha1.
    digest = hashlib.sha1(b"hist5@bench").hexdigest()
    assert "\"hist5@bench\"" in (tmp_path / "idx" / f"{digest[:3]}.log").read_text()


def test_a_reader_during_appends_sees_whole_records_or_none(tmp_path):
    m = AppendMap(tmp_path)
    keys = same_bucket_keys(m, 400)  # one bucket: every append lands where readers read
    big = "x" * 5000  # records span pages, so a read can catch one half written
    done = [0]  # records confirmed written: put_many has returned for keys[:done]
    stop = threading.Event()
    errors: list[str] = []
    checks = [0, 0]  # lookups of confirmed keys, lookups of a key possibly mid-write

    passes = threading.Condition()
    seen = [-1]  # the `done` value of the reader's last finished pass

    def reader() -> None:
        while not stop.is_set():
            written = done[0]
            for k in keys[max(0, written - 3):written + 2]:
                value = m.get(k)
                i = keys.index(k)
                if i < written:
                    checks[0] += 1
                    if value != {"n": i, "pad": big}:
                        errors.append(f"{k}: confirmed but read {value!r:.80}")
                else:
                    checks[1] += 1
                    if value not in (None, {"n": i, "pad": big}):
                        errors.append(f"{k}: partial record {value!r:.80}")
            with passes:
                seen[0] = written
                passes.notify_all()

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i, k in enumerate(keys):
            m.put(k, {"n": i, "pad": big})
            done[0] = i + 1
            if i % 40 == 0:  # let the reader look at least once here (no sleeps)
                with passes:
                    assert passes.wait_for(lambda i=i: seen[0] >= i + 1 or bool(errors), 30)
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert checks[0] > 0 and checks[1] > 0
    assert all(m.get(k) == {"n": i, "pad": big} for i, k in enumerate(keys))


def test_the_crash_point_is_passed_once_per_record_after_its_write(tmp_path, monkeypatch):
    m = AppendMap(tmp_path, crash_point_name="index-written")
    records = {f"r{i}@x": {"processed": True} for i in range(50)}
    seen: list[int] = []

    def point(name: str) -> None:
        assert name == "index-written"
        # At each pass, at least as many records as passes are readable from disk.
        seen.append(sum(1 for k in records if m.get(k) is not None))

    monkeypatch.setattr(appendmap, "crash_point", point)
    m.put_many(records)
    assert len(seen) == len(records)
    assert all(readable >= n + 1 for n, readable in enumerate(seen))
    assert AppendMap(tmp_path).put_many(records, skip_unchanged=True) == 0


def test_sync_fsyncs_each_touched_bucket_and_a_new_buckets_directory(tmp_path, monkeypatch):
    m = AppendMap(tmp_path)
    keys = [f"s{i}@x" for i in range(20)]
    buckets = {m.bucket_of(k) for k in keys}
    fsyncs: list[int] = []
    dirs: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(appendmap.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    monkeypatch.setattr(appendmap, "fsync_dir", lambda p: dirs.append(str(p)))
    m.put_many({k: {"processed": True} for k in keys})
    assert fsyncs == [] and dirs == []  # unsynced: the caller's syncfs covers it
    m.put_many({k: {"incident": 1} for k in keys}, sync=True)
    assert len(fsyncs) == len(buckets) and dirs == []  # no bucket was new
    m.put_many({"brand-new@x": {"processed": True}}, sync=True)
    assert len(fsyncs) == len(buckets) + 1 and dirs == [str(tmp_path)]


# ------------------------------------------------------------ the store and the outbox


def test_store_index_lives_in_buckets_and_recovery_replays_add_nothing(tmp_path):
    store = Store(tmp_path)
    store.commit("k1", index={"m1@x": {"incident": 1}, "ack1@x": {"incident": 1, "own": True}})
    assert store.is_processed("k1") and store.message_record("m1@x") == {"incident": 1}
    journaled = store.pending_journal()[0][1]
    store.write_index_records(journaled, synced=False)
    store.finish("k1")
    assert not any(p.is_dir() for p in (tmp_path / "index").iterdir())  # no hashed dirs
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "index").iterdir()}
    store.write_index_records(journaled)  # a recovery replay of the same entry
    assert {p.name: p.stat().st_size for p in (tmp_path / "index").iterdir()} == sizes
    reopened = Store(tmp_path)
    assert reopened.is_processed("k1") and reopened.is_own_message("ack1@x")
    assert reopened.incident_for_thread(("nope@x", "m1@x")) == 1


def test_load_history_fills_the_index_buckets(tmp_path):
    store = Store(tmp_path)
    store.load_history(iter(()), ((f"h{i}@x", {"processed": True, "incident": i})
                                  for i in range(5000)), next_incident_id=1)
    again = Store(tmp_path)
    assert all(again.message_record(f"h{i}@x") == {"processed": True, "incident": i}
               for i in range(0, 5000, 7))
    assert len(list((tmp_path / "index").glob("*.log"))) > 2900  # ~4096 * (1 - e^-1.2)


def mail(name: str) -> OutgoingMail:
    return OutgoingMail(name, "mailbot@example.com", ("a@example.com",),
                        b"Subject: t\r\n\r\nhi\r\n")


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, m: OutgoingMail) -> None:
        self.sent.append(m.name)


@pytest.fixture
def clock():
    import datetime as dt

    return FakeClock(dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc))


def test_sent_markers_are_appended_and_refuse_a_second_enqueue(tmp_path, clock):
    relay = Recorder()
    outbox = Outbox(tmp_path, relay, clock)
    assert outbox.enqueue(mail("n1")) and outbox.enqueue(mail("n2"))
    assert outbox.deliver_due()[0] == 2
    assert relay.sent == ["n1", "n2"] and outbox.queued() == []
    assert not any(p.is_dir() for p in (tmp_path / "sent").iterdir())
    restarted = Outbox(tmp_path, relay, clock)
    assert restarted.is_sent("n1") and not restarted.is_sent("n3")
    assert restarted.enqueue(mail("n1")) is False
    assert restarted.sent_markers.get("n2") == {"sent": clock.now().isoformat()}
