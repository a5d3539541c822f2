"""The systemd units verify, and the daemon speaks sd_notify (READY, WATCHDOG, STOPPING)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.support import REPO, free_port, write_config

UNITS = REPO / "systemd"


def _analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze missing (Debian package systemd)")
        pytest.skip("systemd-analyze not installed")
    return path


def _localised(unit: Path, tmp: Path) -> Path:
    # The unit names the install location; point it at this checkout's venv to verify it.
    mailbot = Path(sys.executable).with_name("mailbot")
    text = unit.read_text().replace("/opt/mailbot/.venv/bin/mailbot", str(mailbot))
    out = tmp / unit.name
    out.write_text(text)
    return out


@pytest.mark.parametrize("unit", sorted(p.name for p in UNITS.glob("*.service")) +
                         sorted(p.name for p in UNITS.glob("*.timer")))
def test_unit_verifies(unit, tmp_path):
    analyze = _analyze()
    for other in UNITS.iterdir():  # a timer needs its service beside it
        _localised(other, tmp_path)
    out = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True,
                         text=True, timeout=60)
    problems = [line for line in out.stderr.splitlines() if unit.split(".")[0] in line]
    assert out.returncode == 0 and not problems, out.stderr


def test_service_sandbox_exposure_is_low(tmp_path):
    analyze = _analyze()
    unit = _localised(UNITS / "mailbot.service", tmp_path)
    out = subprocess.run([analyze, "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout)
    assert match, out.stdout[-2000:] + out.stderr
    assert float(match.group(1)) <= 2.0


def test_serve_notifies_ready_watchdog_and_stopping(tmp_path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(20)
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen([sys.executable, "-m", "mailbot", "serve", "--config", str(cfg)],
                            cwd=REPO, env=env, stderr=subprocess.PIPE)
    try:
        seen: list[str] = []
        while "READY=1" not in seen:
            seen.append(sock.recv(256).decode())
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # READY means the port accepts
        while "WATCHDOG=1" not in seen:
            seen.append(sock.recv(256).decode())
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in seen:
            seen.append(sock.recv(256).decode())
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
