"""`compose.py` with a `[templates] dir`: an override that fails to render never leaves a
declaration unanswered."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import DECLARATION_BODY, REPO, free_port, message, write_config


@pytest.mark.parametrize("change", ["{{ oncall_room }}", "{{ incident.room | upper }}",
                                    "{{ 1 / 0 }}"])
def test_an_override_that_fails_to_render_sends_the_built_in_mail(tmp_path, change):
    """Compiling cannot tell that a variable is not passed (or an attribute missing, or
    arithmetic fails): the first render finds it. The built-in template writes that mail,
    and the log names the override to fix."""
    shipped = (REPO / "templates" / "mail" / "ack.txt").read_text()
    override = tmp_path / "templates" / "mail"
    override.mkdir(parents=True)
    (override / "ack.txt").write_text(
        shipped.replace("{% block body %}\n", "{% block body %}\nRoom: " + change + "\n", 1))
    cfg = write_config(tmp_path, smtp_port=free_port())
    cfg.write_text(cfg.read_text() + f'\n[templates]\ndir = "{tmp_path / "templates"}"\n')
    out = subprocess.run([sys.executable, "-m", "mailbot", "ingest", "-", "--config", str(cfg)],
                         input=message("[DECLARE] api down", DECLARATION_BODY,
                                       message_id="o@x"),
                         capture_output=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert b"override of mail/ack failed" in out.stderr and b"fix the override" in out.stderr
    sent = list((tmp_path / "var" / "outbox-sent" / "new").iterdir())
    assert len(sent) == 1
    ack = sent[0].read_bytes()
    assert b"[INC-1] api down" in ack and b"Declared: INC-1 is open" in ack
    assert b"Room:" not in ack
    assert not list((tmp_path / "var" / "spool" / "failed").iterdir())
