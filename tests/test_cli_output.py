"""What `mailbot incidents` and `mailbot show` print, read as a person at a terminal would."""

from __future__ import annotations

import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

from mailbot.formatting import fit_person
from tests.support import REPO, free_port, message, write_config

LONG = "Dr. Alexandra Konstantinopoulou <alexandra.konstantinopoulou@example.com>"


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mailbot", *args], capture_output=True,
                          cwd=REPO, timeout=120, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def declared(tmp_path: Path, commander: str) -> Path:
    cfg = write_config(tmp_path, smtp_port=free_port())
    eml = tmp_path / "d.eml"
    eml.write_bytes(message("[DECLARE] Checkout down", "Severity: SEV2\nPhase: investigating\n"
                            f"Commander: {commander}\n\nCarts fail.", message_id="c1@x"))
    run("ingest", str(eml), "--config", str(cfg))
    return cfg


def test_incidents_cuts_the_commanders_name_never_the_address(tmp_path):
    cfg = declared(tmp_path, LONG)
    header, row = run("incidents", "--config", str(cfg)).splitlines()
    assert "alexandra.konstantinopoulou@example.com" in row
    assert row.split()[-2:] == ["Checkout", "down"]
    assert fit_person(LONG, 28) == "alexandra.konstantinopoulou@example.com"  # no room left
    assert fit_person("Alexandra Konstantinopoulou <ak@example.com>", 28) == (
        "Alexandra… <ak@example.com>")
    assert fit_person("Alexandra Konstantinopoulou-Whitfield", 28) == (
        "Alexandra Konstantinopoulou…")
    assert fit_person("Bob <bob@example.com>", 28) == "Bob <bob@example.com>"


def test_show_gives_the_summary_the_acknowledgement_gave(tmp_path):
    cfg = declared(tmp_path, "alice@example.com")  # no Summary: line
    [ack] = (tmp_path / "var" / "outbox-sent" / "new").iterdir()
    body = message_from_bytes(ack.read_bytes(), policy=policy.default).get_body(
        preferencelist=("plain",)).get_content()
    [in_ack] = [line.split(":", 1)[1].strip() for line in body.splitlines()
                if line.startswith("  Summary: ")]
    shown = run("show", "INC-1", "--config", str(cfg))
    [in_show] = [line.split(":", 1)[1].strip() for line in shown.splitlines()
                 if line.startswith("  Summary: ")]
    assert in_ack == in_show == "Checkout down"


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    """`mailbot incidents --all --json | head`: the pipe closes under the writer."""
    cfg = write_config(tmp_path, smtp_port=free_port())
    files = []
    for n in range(300):
        f = tmp_path / f"m{n}.eml"
        f.write_bytes(message(f"[DECLARE] outage number {n} " + "x" * 200,
                              "Severity: SEV3\nPhase: investigating\n"
                              "Commander: alice@example.com\n", message_id=f"bp{n}@x"))
        files.append(str(f))
    made = subprocess.run([sys.executable, "-m", "mailbot", "ingest", *files, "--config",
                           str(cfg)], capture_output=True, cwd=REPO, timeout=300)
    assert made.returncode == 0, made.stderr[-500:]
    proc = subprocess.Popen([sys.executable, "-m", "mailbot", "incidents", "--all", "--json",
                             "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"[\n"  # more than a pipe's buffer follows
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(60) == 0, err
    assert err == b""
