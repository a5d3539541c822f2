"""The systemd units verify, also on the installed layout (docs/install.md), the pipe user
and the service user share the state, and the daemon speaks sd_notify (READY, WATCHDOG,
STOPPING)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import sysconfig
import tempfile
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import DECLARATION_BODY, REPO, free_port, message, write_config

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


# ---------------------------------------------------------------- the installed layout
# docs/install.md, built under a temporary root: a wheel of this checkout, a venv in
# ROOT/opt/mailbot/.venv from Debian's /usr/bin/python3 (a venv of an interpreter under
# /root cannot be run by the mailbot user), the units in ROOT/etc/systemd/system, the
# sysusers.d and tmpfiles.d files in ROOT/etc. The wheel is installed with --no-deps
# and the venv finds its dependencies in this test venv (a .pth file): the test needs no
# network.

SYSTEM_PYTHON = Path("/usr/bin/python3")
SERVICE_UID = 999  # what systemd-sysusers gives the first system user under an empty root
PIPE_UID = 998  # another user, in the mailbot group: the MTA's pipe transport


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} missing (Debian package systemd)")
        pytest.skip(f"{name} not installed")
    return path


@pytest.fixture(scope="module")
def installed():
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no /usr/bin/python3 (Debian package python3-venv)")
    # Not under pytest's tmp_path: that is 0700, and one test runs as other users.
    root = Path(tempfile.mkdtemp(prefix="mailbot-root-"))
    os.chmod(root, 0o755)
    try:
        src, dist = root / "src", root / "dist"
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "__pycache__", "*.egg-info", "build", "dist",
            ".pytest_cache", ".hypothesis", "test-artifacts"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "-w", str(dist), str(src)],
                       check=True, capture_output=True, timeout=300)
        venv = root / "opt" / "mailbot" / ".venv"
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                        "install", "--quiet", "--no-deps", "--no-index",
                        str(next(dist.glob("mailbot-*.whl")))],
                       check=True, capture_output=True, timeout=300)
        shutil.rmtree(src)
        version = subprocess.run([str(venv / "bin" / "python"), "-c",
                                  "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        if version == str(sys.version_info[:2]):
            site = subprocess.run([str(venv / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            Path(site, "test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
        units = root / "etc" / "systemd" / "system"
        units.mkdir(parents=True)
        for name in ("mailbot.service", "mailbot-tick.service", "mailbot-tick.timer"):
            shutil.copy(UNITS / name, units / name)
        # The targets the units name (network-online, multi-user, timers, sysinit).
        system = Path("/usr/lib/systemd/system")
        if system.is_dir():
            shutil.copytree(system, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
        for kind in ("sysusers", "tmpfiles"):
            folder = root / "etc" / f"{kind}.d"
            folder.mkdir(parents=True)
            shutil.copy(UNITS / f"mailbot.{kind}", folder / "mailbot.conf")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_installed_venv_runs_from_the_system_python(installed):
    mailbot = installed / "opt" / "mailbot" / ".venv" / "bin" / "mailbot"
    assert mailbot.read_text().splitlines()[0] == f"#!{mailbot.parent / 'python'}"
    assert (mailbot.parent / "python").resolve().is_relative_to("/usr")
    out = subprocess.run([str(mailbot), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "serve" in out.stdout, out.stderr


@pytest.mark.parametrize("unit", ["mailbot.service", "mailbot-tick.service",
                                  "mailbot-tick.timer"])
def test_units_verify_on_the_installed_layout(installed, unit):
    analyze = _analyze()
    out = subprocess.run([analyze, "verify", f"--root={installed}", unit],
                         capture_output=True, text=True, timeout=60, cwd=installed)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    text = (installed / "etc" / "systemd" / "system" / unit).read_text()
    if unit.endswith(".service"):
        for key in ("MemoryMax=", "TasksMax=", "LimitNOFILE=", "User=mailbot",
                    "StateDirectory=mailbot", "UMask=0007"):
            assert f"\n{key}" in text, key
        assert "DynamicUser=yes" not in text


def test_a_missing_executable_fails_verification(installed, tmp_path):
    """The check above can fail: the same root without the venv's mailbot does."""
    analyze = _analyze()
    mailbot = installed / "opt" / "mailbot" / ".venv" / "bin" / "mailbot"
    hidden = mailbot.with_name("mailbot.hidden")
    mailbot.rename(hidden)
    try:
        out = subprocess.run([analyze, "verify", f"--root={installed}", "mailbot.service"],
                             capture_output=True, text=True, timeout=60, cwd=installed)
    finally:
        hidden.rename(mailbot)
    assert out.returncode != 0 and "/opt/mailbot/.venv/bin/mailbot" in out.stderr


def test_sysusers_and_tmpfiles_make_the_user_and_a_setgid_state_folder(installed):
    sysusers, tmpfiles = _tool("systemd-sysusers"), _tool("systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles needs root to give the folder to mailbot")
    (installed / "etc").mkdir(exist_ok=True)
    out = subprocess.run([sysusers, f"--root={installed}"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    passwd = (installed / "etc" / "passwd").read_text().splitlines()
    entry = next(row for row in passwd if row.startswith("mailbot:")).split(":")
    assert int(entry[2]) == SERVICE_UID and entry[5] == "/var/lib/mailbot"
    assert entry[6] in ("/usr/sbin/nologin", "/sbin/nologin")
    out = subprocess.run([tmpfiles, f"--root={installed}", "--create", "mailbot.conf"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    state = os.stat(installed / "var" / "lib" / "mailbot")
    assert stat.S_IMODE(state.st_mode) == 0o2770
    assert (state.st_uid, state.st_gid) == (SERVICE_UID, SERVICE_UID)


def test_the_pipe_user_and_the_service_user_share_the_state(installed):
    """A pipe-only set-up (issue: DynamicUser= made this impossible): the MTA's pipe user,
    in the mailbot group, with Postfix's umask 077, and the mailbot user take turns
    processing messages on one state folder; each must read and extend what the other
    wrote (index buckets, the hot file, the outbox, the Maildir)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as two other users")
    mailbot = installed / "opt" / "mailbot" / ".venv" / "bin" / "mailbot"
    if not any(installed.glob("opt/mailbot/.venv/lib/python*/site-packages/test-deps.pth")):
        pytest.skip("/usr/bin/python3 is not this Python: the installed venv lacks its deps")
    state = installed / "var" / "lib" / "mailbot-shared"
    state.mkdir(parents=True)
    os.chown(state, SERVICE_UID, SERVICE_UID)
    os.chmod(state, 0o2770)
    etc = installed / "etc" / "mailbot-shared"
    etc.mkdir(parents=True)
    cfg = write_config(etc, smtp_port=free_port())
    cfg.write_text(cfg.read_text().replace(str(etc / "var"), str(state))
                   + f'\n[templates]\ndir = "{REPO / "templates"}"\n')
    os.chmod(cfg, 0o644)
    mails = []
    for i, subject in enumerate(["[DECLARE] shared state", "Re: [INC-1] shared state",
                                 "Re: [INC-1] shared state again"]):
        body = DECLARATION_BODY if i == 0 else (
            "Severity: SEV2\nPhase: mitigating\nCommander: alice@example.com\n\nStep %d.\n" % i)
        path = etc / f"m{i}.eml"
        path.write_bytes(message(subject, body, message_id=f"shared-{i}@x"))
        os.chmod(path, 0o644)
        mails.append(path)

    def as_user(uid: int):
        def become() -> None:
            os.setgroups([SERVICE_UID])
            os.setgid(SERVICE_UID if uid == SERVICE_UID else uid)
            os.setuid(uid)
            os.umask(0o077)
        return become

    for path, uid in zip(mails, [PIPE_UID, SERVICE_UID, PIPE_UID], strict=True):
        out = subprocess.run([str(mailbot), "ingest", str(path), "--config", str(cfg)],
                             capture_output=True, text=True, timeout=120, cwd="/",
                             preexec_fn=as_user(uid))
        assert out.returncode == 0, (uid, out.stderr)
    out = subprocess.run([str(mailbot), "show", "INC-1", "--json", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60, cwd="/",
                         preexec_fn=as_user(SERVICE_UID))
    assert out.returncode == 0, out.stderr
    assert '"phase": "mitigating"' in out.stdout
    assert list((state / "spool" / "new").iterdir()) == []
    assert list((state / "spool" / "failed").iterdir()) == []
    assert len(list((state / "outbox-sent" / "new").iterdir())) == 3
