"""mailbot as a user gets it from `pip install`: a wheel built from this checkout,
installed in a fresh venv outside the repository, run from a folder with nothing in it.

The wheel is built once per session without build isolation (the test venv's setuptools,
`--no-index`), so the test runs offline. The fresh venv gets mailbot only from the wheel;
its dependencies come from the test venv's site-packages through a .pth line (no index
needed), which carries no mailbot code: the checkout is found through the editable
install's finder, and a .pth-added folder's own .pth files are never run."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.support import DECLARATION_BODY, REPO, free_port, message


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """mailbot's wheel, built from a copy of the files a release is made of."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("mailbot", "templates", "config"):
        # symlinks=True: mailbot/templates stays the link to ../templates, as in git.
        shutil.copytree(REPO / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "var"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--disable-pip-version-check", str(src), "-w", str(out)],
        capture_output=True, timeout=300)
    assert built.returncode == 0, built.stderr.decode()[-3000:]
    [whl] = out.glob("mailbot-*.whl")
    return whl


@pytest.fixture
def installed(wheel, tmp_path) -> Path:
    """A fresh venv with the wheel installed; returns its bin/ folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "zz-test-dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def mailbot(bin_dir: Path, *args: str, cwd: Path, stdin: bytes | None = None
            ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAILBOT_CONFIG")}
    return subprocess.run([str(bin_dir / "mailbot"), *args], input=stdin, cwd=cwd, env=env,
                          capture_output=True, timeout=120)


def test_the_wheel_carries_the_templates_and_a_sample_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (REPO / "templates").rglob("*"):
        if path.is_file():
            assert f"mailbot/templates/{path.relative_to(REPO / 'templates')}" in names
    assert {"mailbot/sample_config/mailbot.toml", "mailbot/sample_config/services.toml"} \
        <= names


def test_installed_mailbot_answers_a_declaration_outside_the_checkout(installed, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    where = subprocess.run([str(installed / "python"), "-c",
                            "import mailbot, sys; print(mailbot.__file__)"],
                           cwd=home, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "venv")), where  # the wheel, not the checkout

    # No config yet: one line that says how to get one.
    none = mailbot(installed, "check-config", cwd=home)
    assert none.returncode == 78 and b"init-config" in none.stderr

    made = mailbot(installed, "init-config", "etc", cwd=home)
    assert made.returncode == 0, made.stderr
    cfg = home / "etc" / "mailbot.toml"
    # Configuration, not state: docs/install.md's 0750 folder and 0640 files.
    assert stat.S_IMODE((home / "etc").stat().st_mode) == 0o750
    assert {stat.S_IMODE(p.stat().st_mode) for p in (home / "etc").iterdir()} == {0o640}
    text = cfg.read_text().replace("port = 8025", f"port = {free_port()}")
    cfg.write_text(text)
    checked = mailbot(installed, "check-config", "--config", str(cfg), cwd=home)
    assert checked.returncode == 0, checked.stderr
    assert str(tmp_path / "venv") in checked.stdout.decode()  # its own templates

    declaration = message("[DECLARE] Checkout down", DECLARATION_BODY, message_id="w1@x")
    got = mailbot(installed, "ingest", "-", "--config", "etc/mailbot.toml", cwd=home,
                  stdin=declaration)
    assert got.returncode == 0, got.stderr
    # [storage] dir = "var" is beside the config file, wherever mailbot ran.
    [ack] = (home / "etc" / "var" / "outbox-sent" / "new").iterdir()
    raw = ack.read_bytes()
    assert b"Subject: [INC-1] Checkout down" in raw and b"Severity" in raw

    again = mailbot(installed, "init-config", "etc", cwd=home)
    assert again.returncode == 73 and cfg.read_text() == text  # never overwritten
    assert b"exist already; not overwritten" in again.stderr


def test_a_broken_install_defers_mail_and_says_why(installed, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert mailbot(installed, "init-config", "etc", cwd=home).returncode == 0
    cfg = home / "etc" / "mailbot.toml"
    cfg.write_text(cfg.read_text().replace("port = 8025", f"port = {free_port()}"))
    site = Path(next((tmp_path / "venv" / "lib").glob("python3*")), "site-packages")
    shutil.rmtree(site / "mailbot" / "templates")  # a packaging mistake

    declaration = message("[DECLARE] Checkout down", DECLARATION_BODY, message_id="w2@x")
    got = mailbot(installed, "ingest", "-", "--config", str(cfg), cwd=home,
                  stdin=declaration)
    # 75: the MTA keeps the message and retries; nothing was spooled that could never
    # be processed (exit 0 would have told the MTA to drop its copy).
    assert got.returncode == 75, got.stderr
    assert b"templates missing" in got.stderr and got.stderr.count(b"\n") == 1
    spool = home / "etc" / "var" / "spool"
    assert not spool.exists() or not any((spool / "new").iterdir())

    checked = mailbot(installed, "check-config", "--config", str(cfg), cwd=home)
    assert checked.returncode == 78 and b"templates missing" in checked.stderr
    served = mailbot(installed, "serve", "--config", str(cfg), cwd=home)
    assert served.returncode == 78 and b"templates missing" in served.stderr


def test_every_template_the_code_renders_is_required_at_start():
    """A template missing from REQUIRED_TEMPLATES would not be checked at start: a broken
    install would then take mail and fail on it later. Every top-level mail and CLI
    template (not partials: `_*` and the ones only included) must be in the list."""
    from mailbot.config import REQUIRED_TEMPLATES, builtin_templates_dir

    root = builtin_templates_dir()
    included = {"mail/postmortem_template.txt"}
    shipped = {str(p.relative_to(root)) for folder in ("mail", "cli")
               for p in (root / folder).glob("*.txt")
               if not p.name.startswith("_")} - included
    assert shipped <= set(REQUIRED_TEMPLATES)
