"""The store survives kill -9 in the middle of writes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from mailbot.models import Incident
from mailbot.store import Store
from tests.support import REPO

WRITER = textwrap.dedent("""
    import sys
    from mailbot.models import Incident
    from mailbot.store import Store
    store = Store(sys.argv[1])
    n = 0
    while True:
        n += 1
        inc = Incident(id=n, title="t" * 2000 + str(n))
        store.commit(f"k{n}", incidents=[inc], next_incident_id=n + 1)
        store.write_index_records({f"k{n}": {"processed": True, "incident": n}})
        store.finish(f"k{n}")
        print(n, flush=True)
""")


def test_kill_9_mid_write_leaves_old_or_new_state(tmp_path):
    for round_ in range(5):
        db = tmp_path / f"db{round_}"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        committed = 0
        while committed < 20 + round_ * 7:
            committed = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = Store(db)
        ids = [i.id for i in store.live_incidents()]
        assert ids == list(range(1, len(ids) + 1))  # a prefix: nothing torn, nothing skipped
        assert len(ids) >= committed  # everything reported committed is there
        assert store.check_integrity() == []
        assert all(store.is_processed(f"k{i}") for i in range(1, committed + 1))


def test_closed_incidents_leave_the_hot_file(tmp_path):
    store = Store(tmp_path)
    store.commit("a", incidents=[Incident(id=1, title="one"), Incident(id=2, title="two")],
                 next_incident_id=3)
    closed = Incident(id=1, title="one", status="closed")
    store.commit("b", incidents=[closed])
    assert [i.id for i in store.live_incidents()] == [2]
    assert store.get(1).status == "closed"
    reopened = Incident(id=1, title="one", status="open")
    store.commit("c", incidents=[reopened])
    assert [i.id for i in store.live_incidents()] == [1, 2]
    assert list(store.closed_incidents()) == []


def test_a_failed_write_leaves_memory_as_the_file_is(tmp_path, monkeypatch):
    import mailbot.store.hotfile as store_module

    store = Store(tmp_path)
    store.commit("k1", incidents=[Incident(id=1, title="one")], next_incident_id=2)
    real = store_module.write_atomic

    def disk_full(path, data, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "write_atomic", disk_full)
    try:
        store.commit("k2", incidents=[Incident(id=2, title="two")], next_incident_id=3)
    except OSError:
        pass
    else:
        raise AssertionError("the write should have failed")
    # Nothing of k2 may look done: a retry must process it again.
    assert not store.is_processed("k2")
    assert [i.id for i in store.live_incidents()] == [1]
    assert store.allocate_id() == 2
    with pytest.raises(OSError):
        with store.group():
            store.commit("k3", incidents=[Incident(id=2, title="two")], next_incident_id=3)
    assert not store.is_processed("k3") and not store.is_flushed()
    monkeypatch.setattr(store_module, "write_atomic", real)
    store.commit("k2", incidents=[Incident(id=2, title="two")], next_incident_id=3)
    assert store.is_processed("k2") and store.is_flushed()
    assert [i.id for i in Store(tmp_path).live_incidents()] == [1, 2]


def test_the_closure_summary_stays_small_however_many_close(tmp_path):
    import datetime as dt

    from mailbot.models import ActionItem, Postmortem

    store = Store(tmp_path)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for n in range(1, 301):  # one closure every 6 hours for 75 days
        closed = t0 + dt.timedelta(hours=6 * n)
        pm = None
        if n == 1:  # one with an action item due far out: kept until it is long overdue
            pm = Postmortem(closed, "a@example.com", "m", "text", {},
                            (ActionItem("fix it", "bob@example.com",
                                        (t0 + dt.timedelta(days=60)).date()),))
        store.commit(f"k{n}", incidents=[Incident(id=n, title=f"t{n}", status="closed",
                                                  closed_at=closed, postmortem=pm)])
    recent = store.recently_closed()
    # 3 days of closures every 6 hours, both ends included (13), plus the one with an item
    assert len(recent) == 14
    assert recent[0]["id"] == 1 and recent[0]["items"][0]["text"] == "fix it"
    assert recent[-1]["id"] == 300


def test_closure_summaries_are_kept_while_the_digest_shows_them(tmp_path):
    """One retention policy (store/retention.py): the store drops a closure's summary only
    after the digest has stopped showing the closure, and an open action item's only
    after it stopped counting it."""
    import datetime as dt

    from mailbot.digest import sync_closed
    from mailbot.models import ActionItem, Postmortem
    from mailbot.store import retention

    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
    due = t0.date() + dt.timedelta(days=1)
    item = ActionItem("add an alert", "bob@example.com", due, number=1)
    pm = Postmortem(accepted_at=t0, author="bob@example.com", message_id="<pm@x>", text="",
                    sections={}, action_items=(item,))
    store = Store(tmp_path)
    store.commit("a", incidents=[Incident(id=1, title="one", status="closed", closed_at=t0),
                                 Incident(id=2, title="two", status="closed", closed_at=t0,
                                          postmortem=pm)])

    def close_another(n: int, at: dt.datetime) -> set[int]:
        # Expiry runs when an incident closes: close one at `at`, see what is left.
        store.commit(f"c{n}", incidents=[Incident(id=n, title="x", status="closed",
                                                  closed_at=at)])
        return {s["id"] for s in store.recently_closed()}

    shown_until = t0 + retention.CLOSURE_SHOWN
    assert [c["id"] for c in sync_closed(store, shown_until)["incidents"]] == [1, 2]
    assert sync_closed(store, shown_until + dt.timedelta(seconds=1))["incidents"] == []
    assert {1, 2} <= close_another(10, shown_until)
    kept_until = t0 + retention.CLOSURE_KEPT
    assert {1, 2} <= close_another(11, kept_until)
    left = close_another(12, kept_until + dt.timedelta(seconds=1))
    assert 1 not in left and 2 in left  # the open item keeps incident 2's summary

    due_at = dt.datetime.combine(due, dt.time(0), tzinfo=dt.timezone.utc)
    # The digest lists an overdue item this long: its summary must still be there.
    assert 2 in close_another(15, due_at + retention.ITEM_OVERDUE_SHOWN)
    assert sync_closed(store, due_at + retention.ITEM_OVERDUE_SHOWN)["items"]
    item_until = due_at + retention.ITEM_OVERDUE_KEPT
    assert [i["incident"] for i in sync_closed(store, item_until)["items"]] == [2]
    assert 2 in close_another(13, item_until)
    assert 2 not in close_another(14, item_until + dt.timedelta(seconds=1))
