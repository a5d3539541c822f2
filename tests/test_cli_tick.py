"""`mailbot tick`: what `serve` does on its own, run once by a timer where there is no
`serve` (mail fed by `mailbot ingest`). Run as the real command, on the real clock."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from mailbot.clock import FakeClock
from mailbot.config import load_config
from mailbot.lock import WriterLock
from mailbot.runtime import build_runtime
from tests.support import DECLARATION_BODY, REPO, free_port, message, write_config


def tick(cfg) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", "tick", "--config", str(cfg)],
                          capture_output=True, cwd=REPO, timeout=120)


def kinds(tmp_path) -> list[str]:
    new = tmp_path / "var" / "outbox-sent" / "new"
    out = []
    for path in sorted(new.iterdir()):
        head = path.read_bytes().split(b"\r\n\r\n", 1)[0]
        kind = [line for line in head.split(b"\r\n") if line.startswith(b"X-Mailbot-Kind:")]
        out.append(kind[0].split(b":", 1)[1].strip().decode())
    return out


def test_tick_sends_what_is_due_once_and_leaves_it_to_a_running_serve(tmp_path):
    cfg = write_config(tmp_path, smtp_port=free_port())  # no relay: the Maildir
    # An incident declared (SEV2: stale after 60 minutes) two days ago, not updated.
    rt = build_runtime(load_config(cfg),
                       clock=FakeClock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)))
    rt.spool.put(message("[DECLARE] Checkout down", DECLARATION_BODY, message_id="t1@x"), "pipe")
    rt.pipeline.process_pending()
    rt.outbox.deliver_due()
    rt.close()
    assert kinds(tmp_path) == ["ack"]

    # A second process holds the writer lock (as serve does): tick leaves it all to it.
    lock = WriterLock(tmp_path / "var" / "mailbot.lock")
    assert lock.acquire()
    try:
        held = tick(cfg)
    finally:
        lock.release()
    assert held.returncode == 0 and b"holds the writer lock" in held.stderr
    assert kinds(tmp_path) == ["ack"]

    first = tick(cfg)
    assert first.returncode == 0, first.stderr
    # The stale-update reminder, and the daily digest: its latest slot came after the
    # incident was declared, and nothing ran since, so it was missed and is sent at once.
    assert sorted(kinds(tmp_path)) == ["ack", "digest", "reminder_stale"]
    again = tick(cfg)
    assert again.returncode == 0, again.stderr
    assert sorted(kinds(tmp_path)) == ["ack", "digest", "reminder_stale"]  # each once
