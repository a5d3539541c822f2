"""A full disk makes SMTP say "try later" (452) instead of accepting what it cannot keep."""

from __future__ import annotations

import os
import smtplib
import subprocess

import pytest

from mailbot.config import load_config
from mailbot.daemon import Daemon
from mailbot.runtime import build_runtime
from tests.support import DECLARATION_BODY, free_port, message, wait_for, write_config


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        message_ = f"cannot mount a tmpfs for the disk-full test: {out.stderr.strip()}"
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(message_)
        pytest.skip(message_)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_answers_452_and_recovers(tmp_path, small_disk, sink):
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port)
    cfg.write_text(cfg.read_text().replace(f'dir = "{tmp_path / "var"}"',
                                           f'dir = "{small_disk / "var"}"'))
    rt = build_runtime(load_config(cfg))
    daemon = Daemon(rt)
    daemon.start()
    try:
        filler = small_disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # take all the space
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        finally:
            os.close(fd)
        raw = message("[DECLARE] no room", DECLARATION_BODY + ("x" * 70 + "\n") * 3000,
                      message_id="full@x")
        with smtplib.SMTP("127.0.0.1", port) as s:
            with pytest.raises(smtplib.SMTPDataError) as err:
                s.sendmail("alice@example.com", ["incidents@example.com"], raw)
        assert err.value.smtp_code == 452
        assert rt.spool.pending() == []  # nothing half-accepted

        filler.unlink()  # space returns
        with smtplib.SMTP("127.0.0.1", port) as s:
            assert s.sendmail("alice@example.com", ["incidents@example.com"], raw) == {}
        got = sink.wait_count(1)
        assert "no room" in got[0].message["Subject"]
        wait_for(lambda: [i.title for i in rt.store.live_incidents()] == ["no room"])
    finally:
        daemon.shutdown()
        rt.close()
