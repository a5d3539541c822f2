"""`daemon.py`: `serve` started while a one-shot command holds the writer lock."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mailbot.config import load_config
from mailbot.daemon import Daemon, StartupError
from mailbot.lock import WriterLock
from mailbot.runtime import build_runtime
from tests.support import REPO, DaemonProcess, free_port, wait_for, write_config


def test_serve_waits_for_a_one_shot_holder_then_starts(tmp_path):
    """A pipe's `ingest` holds the lock for a moment at a time: `systemctl restart
    mailbot` while mail flows must not fail for it."""
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port)
    lock = WriterLock(tmp_path / "var" / "mailbot.lock")
    assert lock.acquire()
    proc = subprocess.Popen([sys.executable, "-m", "mailbot", "serve", "--config", str(cfg)],
                            stderr=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the event: serve says it waits for the holder
            if "holds the writer lock" in line:
                break
        else:
            pytest.fail(f"serve exited {proc.wait()} without waiting")
        lock.release()
        serving = DaemonProcess(cfg, port)
        serving.proc = proc  # this very process: it listens once the lock is free
        wait_for(serving._listening, timeout=20, what="serve to listen once the lock is free")
    finally:
        lock.release()
        proc.terminate()
        assert proc.wait(30) == 0


def test_serve_gives_up_on_a_holder_that_keeps_the_lock(tmp_path):
    config = load_config(write_config(tmp_path, smtp_port=free_port()))
    lock = WriterLock(config.storage.lock_file)
    assert lock.acquire()
    daemon = Daemon(build_runtime(config))
    daemon.lock_wait = 0.3
    try:
        with pytest.raises(StartupError, match="held the writer lock for 0.3 s"):
            daemon.start()
    finally:
        lock.release()
    assert not daemon.threads  # nothing was started
