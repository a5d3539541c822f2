"""mailbot's state is for its own user and group only, whatever umask it is started with,
and a password file that every user can read is named in one line of warning.

Files are 0660 and folders 0770 (group `mailbot`: the MTA's pipe user may process a
message when `serve` does not run; docs/install.md, "File modes"). Real processes
(`mailbot ingest`, `mailbot check-config`) started with the umask of a shell (022) and
of Postfix's pipe(8) (077)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from mailbot.config import load_config
from tests.support import DECLARATION_BODY, REPO, free_port, message, write_config


def _run(args: list[str], umask: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: os.umask(umask))


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["shell", "postfix_pipe"])
def test_state_is_for_owner_and_group_only(tmp_path, umask):
    cfg = write_config(tmp_path, smtp_port=free_port())  # no relay: the Maildir outbox-sent
    mail = tmp_path / "m.eml"
    mail.write_bytes(message("[DECLARE] modes", DECLARATION_BODY, message_id="modes@x"))
    broken = tmp_path / "broken.eml"
    broken.write_bytes(b"\xff" * 10)
    out = _run(["ingest", str(mail), str(broken), "--config", str(cfg)], umask)
    assert out.returncode == 0, out.stderr
    storage = load_config(cfg).storage.dir
    files, folders = [], [storage]
    for root, dirs, names in os.walk(storage):
        folders += [os.path.join(root, d) for d in dirs]
        files += [os.path.join(root, n) for n in names]
    sent = list((storage / "outbox-sent" / "new").iterdir())
    assert sent and files and len(folders) > 5
    # jinja2 writes its bytecode cache 0600 (mkstemp): a cache any user may lack.
    wrong = {p: oct(stat.S_IMODE(os.stat(p).st_mode)) for p in files
             if stat.S_IMODE(os.stat(p).st_mode) != 0o660
             and not (stat.S_IMODE(os.stat(p).st_mode) == 0o600 and "/cache/" in p)}
    wrong |= {p: oct(stat.S_IMODE(os.stat(p).st_mode)) for p in folders
              if stat.S_IMODE(os.stat(p).st_mode) & 0o777 != 0o770}
    assert not wrong


def _with_password_file(tmp_path, mode: int):
    secret = tmp_path / "relay-password"
    secret.write_text("s3cret\n")
    os.chmod(secret, mode)
    cfg = write_config(tmp_path, smtp_port=free_port())
    cfg.write_text(cfg.read_text().replace(
        "[outbound]\n", f'[outbound]\nusername = "bot"\npassword_file = "{secret}"\n'))
    return cfg, secret


def test_a_password_file_others_can_read_is_named_in_one_warning_line(tmp_path):
    cfg, secret = _with_password_file(tmp_path, 0o644)
    out = _run(["check-config", "--config", str(cfg)], 0o022)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if str(secret) in line]
    assert len(lines) == 1, out.stderr
    assert "readable by other users" in lines[0] and "chmod o-rwx" in lines[0]


def test_a_password_file_for_owner_and_group_gets_no_warning(tmp_path):
    cfg, secret = _with_password_file(tmp_path, 0o640)
    out = _run(["check-config", "--config", str(cfg)], 0o022)
    assert out.returncode == 0, out.stderr
    assert str(secret) not in out.stderr


def test_published_pages_are_readable_by_a_web_server_whatever_the_umask(tmp_path):
    """The site is made to be served: 0644 pages in 0755 folders even under umask 007,
    while the state beside it stays 0660."""
    import datetime as dt

    from mailbot.publish import publish_site
    from tests.support.factory import make_config, make_incident
    from mailbot.services import load_services

    config = make_config(tmp_path / "etc")
    old = os.umask(0o007)
    try:
        publish_site(tmp_path / "site", [make_incident(1)], load_services(config.services_file),
                     config, dt.datetime(2024, 5, 2, 14, 0, tzinfo=dt.timezone.utc))
    finally:
        os.umask(old)
    pages = [p for p in (tmp_path / "site").rglob("*") if p.is_file()]
    assert pages and {stat.S_IMODE(p.stat().st_mode) for p in pages} == {0o644}
    folders = [tmp_path / "site", *[p for p in (tmp_path / "site").rglob("*") if p.is_dir()]]
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o755}
