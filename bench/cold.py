"""The cold path: one process per message, as an MTA's pipe transport runs `mailbot ingest`.

Side by side in one run, interleaved round by round (so the machine's load falls on every
row alike), wall time from fork to exit of:

- `python -c pass`, the interpreter alone (the unit the targets are written in);
- `mailbot ingest -` while `mailbot serve` holds the writer lock: spool only;
- `mailbot ingest -` with no daemon: spool, process, and deliver the ack to the sink
  before it exits (the bench checks the ack arrived);
- `roundup-mailgw TRACKER` reading the same message (Roundup's version) on stdin;
- `mailbot check-config`, `mailbot incidents`, `mailbot show INC-1`.

`mailbot` is the console script an MTA runs (bin/mailbot beside this Python). The
package's bytecode is compiled first, as `pip install` does: a checkout run with
PYTHONDONTWRITEBYTECODE would otherwise compile every module from source on every start.
`import_profile` runs `-X importtime` a few times and keeps each module's median own time.
"""

from __future__ import annotations

import compileall
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from harness import MAILBOT, PYTHON, REPO, Serve, Sink, free_port, fresh_dir, write_config

ROWS = ("bare", "spool", "full", "roundup", "check-config", "incidents", "show",
        "floor-full", "floor-jinja2")

# Lower bounds set by the design card, timed like the rows above: a process that only
# imports what the path cannot do without and does nothing else. A one-message ingest
# with no daemon parses with mail-parser, keeps the record in TinyDB, writes the ack with
# Jinja2 and hands it to the relay with smtplib; `show` and `check-config` render or
# compile Jinja2 templates.
FLOOR_IMPORTS = {
    "floor-full": "import jinja2, mailparser, tinydb, smtplib",
    "floor-jinja2": "import jinja2",
}


def mailbot_command() -> list[str]:
    script = PYTHON.parent / "mailbot"
    return [str(script)] if script.exists() else list(MAILBOT)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _timed(argv: list[str], stdin: bytes | None = None, env=None) -> tuple[float, int, bytes]:
    """Wall seconds from fork to exit, the exit code, stderr."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env, timeout=120)
    return time.perf_counter() - t0, proc.returncode, proc.stderr


def run(items, sink: Sink, rounds: int, roundup_tracker: Path | None, log=print) -> dict:
    """Per row: the list of wall times (seconds), one per round."""
    compileall.compile_dir(str(REPO / "mailbot"), quiet=1)
    env = child_env()
    mailbot = mailbot_command()
    # A: `serve` holds the lock; B: no daemon, ingest does everything itself.
    root_a, root_b = fresh_dir("cold-serve"), fresh_dir("cold-alone")
    port_a = free_port()
    cfg_a = write_config(root_a, smtp_port=port_a, relay_port=sink.port)
    cfg_b = write_config(root_b, smtp_port=free_port(), relay_port=sink.port)
    items = items[:rounds]
    times: dict[str, list[float]] = {row: [] for row in ROWS}
    daemon = Serve(cfg_a, port_a, root_a / "serve.log").start()
    try:
        for k, item in enumerate(items):
            # Serve's copy needs its own Message-ID: it is a different store, but the
            # sink tells replies apart by In-Reply-To.
            spool_mid = f"spool.{item.message_id}"
            spool_raw = item.raw.replace(item.message_id.encode(), spool_mid.encode())
            sink.reset()
            for row in ROWS:
                if row == "bare":
                    s, code, err = _timed([str(PYTHON), "-c", "pass"], env=env)
                elif row in FLOOR_IMPORTS:
                    s, code, err = _timed([str(PYTHON), "-c", FLOOR_IMPORTS[row]], env=env)
                elif row == "spool":
                    s, code, err = _timed([*mailbot, "ingest", "-", "--config", str(cfg_a)],
                                          spool_raw, env)
                elif row == "full":
                    s, code, err = _timed([*mailbot, "ingest", "-", "--config", str(cfg_b)],
                                          item.raw, env)
                    if code == 0:  # the ack is delivered before ingest exits
                        sink.wait_replies([item.message_id], timeout=10)
                elif row == "roundup":
                    if roundup_tracker is None:
                        continue
                    s, code, err = _timed([str(roundup_tracker.parent.parent / "roundup-venv"
                                               / "bin" / "roundup-mailgw"),
                                           str(roundup_tracker)],
                                          item.roundup.replace(b"\r\n", b"\n"), env)
                elif row == "show":
                    s, code, err = _timed([*mailbot, "show", "INC-1", "--config", str(cfg_b)],
                                          env=env)
                else:
                    s, code, err = _timed([*mailbot, row, "--config", str(cfg_b)], env=env)
                if code != 0:
                    raise RuntimeError(f"{row} exited {code}: {err.decode()[-300:]}")
                times[row].append(s)
            # serve processes what the spool-only ingest left: wait for its ack, so that
            # work does not overlap the next round's measurements.
            sink.wait_replies([spool_mid], timeout=60)
            log(f"  cold round {k + 1}/{len(items)}: " + ", ".join(
                f"{row} {times[row][-1] * 1000:.0f}" for row in ROWS if times[row]) + " ms")
    finally:
        daemon.stop()
    return times


def roundup_tracker(template: Path) -> Path:
    """A copy of the bench's Roundup template tracker for one-message-per-process runs."""
    tracker = template.parent / "cold"
    shutil.rmtree(tracker, ignore_errors=True)
    shutil.copytree(template, tracker)
    return tracker


_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def import_profile(argv: list[str], stdin: bytes | None, runs: int = 7,
                   top: int = 12) -> tuple[float, list[tuple[str, float, float]]]:
    """`-X importtime` of one command, `runs` times: (median total ms of the top-level
    imports, the `top` modules by median own time as (name, own ms, cumulative ms))."""
    own: dict[str, list[int]] = {}
    cum: dict[str, list[int]] = {}
    totals = []
    env = child_env()
    for _ in range(runs):
        proc = subprocess.run([str(PYTHON), "-X", "importtime", *argv], input=stdin,
                              capture_output=True, env=env, timeout=120)
        total = 0
        for line in proc.stderr.decode("utf-8", "replace").splitlines():
            m = _LINE.match(line)
            if not m:
                continue
            name = m.group(4)
            own.setdefault(name, []).append(int(m.group(1)))
            cum.setdefault(name, []).append(int(m.group(2)))
            if len(m.group(3)) == 1:  # top level: its cumulative time is not counted twice
                total += int(m.group(2))
        totals.append(total)
    ranked = sorted(own, key=lambda n: statistics.median(own[n]), reverse=True)[:top]
    return (statistics.median(totals) / 1000,
            [(n, statistics.median(own[n]) / 1000, statistics.median(cum[n]) / 1000)
             for n in ranked])


def spool_only_imports(items, runs: int = 7) -> tuple[float, list]:
    """The import profile of `mailbot ingest -` while another process holds the lock."""
    from mailbot.lock import WriterLock  # the bench's own process holds it: a real flock

    root = fresh_dir("cold-imports")
    cfg = write_config(root, smtp_port=free_port(), relay_port=None)
    lock = WriterLock(root / "var" / "mailbot.lock")
    assert lock.acquire()
    try:
        return import_profile([*_script(), "ingest", "-", "--config", str(cfg)],
                              items[0].raw, runs)
    finally:
        lock.release()


def full_imports(items, runs: int = 7) -> tuple[float, list]:
    """The import profile of `mailbot ingest -` with no daemon (Maildir relay)."""
    root = fresh_dir("cold-imports-full")
    cfg = write_config(root, smtp_port=free_port(), relay_port=None)
    return import_profile([*_script(), "ingest", "-", "--config", str(cfg)],
                          items[0].raw, runs)


def _script() -> list[str]:
    """The console script's path (after `python -X importtime`), else `-m mailbot`."""
    script = PYTHON.parent / "mailbot"
    return [str(script)] if script.exists() else ["-m", "mailbot"]

