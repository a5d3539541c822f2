"""`daemon.py`: `serve` started while a one-shot command holds the writer lock."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from mailbot.config import load_config
from mailbot.daemon import Daemon, StartupError
from mailbot.lock import WriterLock
from mailbot.runtime import build_runtime
from tests.support import (DECLARATION_BODY, REPO, DaemonProcess, free_port, message, send,
                           wait_for, write_config)


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


def test_serve_that_waited_for_the_lock_reads_what_the_holder_committed(tmp_path, sink):
    """serve builds its Runtime, then takes the writer lock: a pipe's `ingest` may have
    declared an incident in between. serve must number the next one after it, not give
    the same number again (and overwrite it)."""
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port)
    rt = build_runtime(load_config(cfg))  # as `serve` does, before the lock
    piped = subprocess.run([sys.executable, "-m", "mailbot", "ingest", "-", "--config", str(cfg)],
                           input=message("[DECLARE] piped first", DECLARATION_BODY,
                                         message_id="piped@x"),
                           capture_output=True, cwd=REPO, timeout=120)
    assert piped.returncode == 0, piped.stderr
    daemon = Daemon(rt)
    daemon.start()
    try:
        send(port, message("[DECLARE] sent to serve", DECLARATION_BODY, message_id="smtp@x"))
        acks = sink.wait_count(2, timeout=20)
    finally:
        daemon.shutdown()
        rt.close()
    subjects = sorted(a.subject for a in acks)
    assert subjects == ["[INC-1] piped first", "[INC-2] sent to serve"], subjects
    shown = subprocess.run([sys.executable, "-m", "mailbot", "incidents", "--all", "--json",
                            "--config", str(cfg)], capture_output=True, cwd=REPO, timeout=60)
    titles = sorted(i["title"] for i in json.loads(shown.stdout))
    assert titles == ["piped first", "sent to serve"]


def test_stopping_answers_the_message_being_sent_and_takes_no_new_one(tmp_path, sink):
    """SIGTERM while a client is in DATA: its message is stored and gets its 250 (a user
    test saw messages stored and numbered whose sender got no answer), then serve stops;
    a new connection is refused meanwhile."""
    import smtplib
    import socket

    port = free_port()
    config = load_config(write_config(tmp_path, smtp_port=port, relay_port=sink.port))
    daemon = Daemon(build_runtime(config))
    daemon.start()
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo()
    client.mail("alice@example.com")
    client.rcpt("incidents@example.com")
    code, _ = client.docmd("DATA")
    assert code == 354
    raw = message("[DECLARE] sent while stopping", DECLARATION_BODY, message_id="stop@x")
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    half = len(raw) // 2
    client.send(raw[:half])
    stopper = threading.Thread(target=daemon.shutdown)
    stopper.start()
    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except OSError:
            return True

    wait_for(refused, what="new connections to be refused")
    client.send(raw[half:] + b"\r\n.\r\n")
    code, reply = client.getreply()
    assert code == 250, reply
    client.close()
    stopper.join(30)
    assert not stopper.is_alive()
    daemon.rt.close()
    stored = list((tmp_path / "var" / "spool" / "new").iterdir()) + \
        list((tmp_path / "var" / "db").glob("hot.json"))
    assert any(b"stop@x" in p.read_bytes() for p in stored)
