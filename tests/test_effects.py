"""The commit protocol (mailbot/effects.py) at start-up: a journal entry left unfinished
is finished once, with one sync; entries already finished cost no sync, so a one-message
`mailbot ingest` (which recovers first) pays for none."""

from __future__ import annotations

import pytest

from mailbot import effects
from mailbot.runtime import build_runtime

from tests.support import DECLARATION_BODY, load, message


@pytest.fixture
def syncs(monkeypatch):
    """Count the file-system syncs; each still runs."""
    calls = []
    real = effects.sync_filesystem

    def counted(path):
        calls.append(path)
        real(path)

    monkeypatch.setattr(effects, "sync_filesystem", counted)
    return calls


def test_a_clean_start_syncs_nothing_and_an_interrupted_commit_is_finished_once(
        tmp_path, syncs):
    config = load(tmp_path, smtp_port=1)
    rt = build_runtime(config)
    rt.spool.put(message("[DECLARE] disk full", DECLARATION_BODY, message_id="a@x"), "pipe")
    assert rt.pipeline.process_pending() == 1
    assert len(syncs) == 1  # the group's one sync
    queued = rt.outbox.queued()
    assert len(queued) == 1  # the acknowledgement
    rt.close()

    again = build_runtime(config)
    assert again.store.pending_journal()  # the group's entry stays until the next commit
    assert again.pipeline.recover() == 0
    assert len(syncs) == 1  # nothing left: no sync
    # A job's commit whose effects were interrupted after the hot-file write:
    staged = effects.stage(again.store, "job:test:1", index={"job:test:1": {}})
    assert staged.key == "job:test:1"
    again.close()

    third = build_runtime(config)
    assert third.store.message_record("job:test:1") is None  # index not written yet
    assert third.pipeline.recover() == 1
    assert len(syncs) == 2
    assert third.store.is_processed("job:test:1")
    assert third.pipeline.recover() == 0  # finished: a second start has nothing left
    assert len(syncs) == 2
    third.close()
