"""The peer: Roundup's mail gateway on the same conversation.

Roundup lives in its own venv under bench/out/ (git-ignored; nothing of it is committed).
A template tracker (classic schema, sqlite backend, the corpus's senders as users, nosy
mail written to a file through `[mail] debug`) is made once per bench run and copied for
each timed run; the timed part is one `roundup-mailgw TRACKER mailbox FILE` call.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

from corpus import SENDERS, to_mbox
from harness import OUT, run_measured

VENV = OUT / "roundup-venv"
BIN = VENV / "bin"


def ensure_roundup(log=print) -> str:
    """'' when roundup-mailgw is ready, else why not."""
    if (BIN / "roundup-mailgw").exists():
        return ""
    log("  installing roundup into bench/out/roundup-venv (pip) ...")
    try:
        if not (BIN / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True,
                           capture_output=True, timeout=300)
        proc = subprocess.run([str(BIN / "pip"), "install", "--quiet",
                               "--disable-pip-version-check", "roundup"],
                              capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"roundup could not be installed: {exc}"
    if proc.returncode != 0 or not (BIN / "roundup-mailgw").exists():
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        return f"roundup could not be installed: {last}"
    return ""


def version() -> str:
    proc = subprocess.run([str(BIN / "python"), "-c",
                           "import roundup; print(roundup.__version__)"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def _admin(tracker: Path, *args: str, stdin: str | None = None) -> None:
    proc = subprocess.run([str(BIN / "roundup-admin"), "-i", str(tracker), *args],
                          capture_output=True, text=True, input=stdin, timeout=300)
    if proc.returncode != 0 or "Error" in proc.stdout:
        raise RuntimeError(f"roundup-admin {args[0]}: {proc.stdout[-300:]} "
                           f"{proc.stderr[-300:]}")


def make_template(log=print) -> Path:
    """A fresh, initialised tracker with the corpus's senders as users."""
    base = OUT / "roundup"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    tracker = base / "template"
    _admin(tracker, "install", "classic", "sqlite")
    ini = tracker / "config.ini"
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ini)
    cfg["tracker"]["web"] = "http://localhost:8917/trk/"
    cfg["mail"]["domain"] = "example.com"
    cfg["mail"]["host"] = "localhost"
    cfg["mail"]["debug"] = "nosy-mail.txt"  # relative to the tracker: outgoing mail lands here
    cfg["nosy"]["add_author"] = "yes"  # every participant hears of later changes
    with open(ini, "w") as fh:
        cfg.write(fh)
    _admin(tracker, "initialise", "bench-admin-password")
    for address in SENDERS:
        _admin(tracker, "create", "user", f"username={address.split('@')[0]}",
               f"address={address}", "roles=User")
    return tracker


def run_once(template: Path, items, run: int) -> dict:
    """Feed the corpus as one mbox; returns seconds, msg/s, peak RSS and mail written."""
    tracker = template.parent / f"run{run}"
    shutil.rmtree(tracker, ignore_errors=True)
    shutil.copytree(template, tracker)
    mbox = template.parent / f"corpus{run}.mbox"
    mbox.write_bytes(to_mbox(items))
    child = run_measured([str(BIN / "roundup-mailgw"), str(tracker), "mailbox", str(mbox)],
                         template.parent / f"mailgw{run}.log")
    if child.code != 0:
        raise RuntimeError(f"roundup-mailgw exited {child.code}: {child.log_tail(300)}")
    elapsed = child.exited - child.started
    out = tracker / "nosy-mail.txt"
    text = out.read_bytes() if out.exists() else b""
    mails = text.count(b"\nSubject: ") + text.startswith(b"Subject: ")
    issues = subprocess.run([str(BIN / "roundup-admin"), "-i", str(tracker), "list", "issue"],
                            capture_output=True, text=True).stdout.count("\n")
    shutil.rmtree(tracker, ignore_errors=True)
    return {"seconds": elapsed, "rate": len(items) / elapsed,
            "rss_mb": child.usage.ru_maxrss / 1024, "mails": mails, "issues": issues}
