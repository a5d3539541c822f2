"""Profiles with py-spy (sampling, all threads, no code changes): folded stacks in
bench/out/, summed per function as inclusive and self share of the samples."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from harness import PYTHON

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    exe = PYTHON.parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def record_command(out: Path, rate: int = 200) -> list[str]:
    """Prefix for a command to run it under py-spy."""
    return [py_spy(), "record", "-r", str(rate), "-f", "raw", "-o", str(out), "--"]


class Attached:
    """py-spy attached to a running process until stop()."""

    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        self.out = out
        self.proc = subprocess.Popen([py_spy(), "record", "-r", str(rate), "-f", "raw",
                                      "-o", str(out), "-p", str(pid)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # let it attach before the load starts

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def summarize(folded: Path, top: int = 12) -> tuple[int, list[tuple[str, float]],
                                                    list[tuple[str, float]]]:
    """(samples, top functions by inclusive %, top by self %)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))] or frames
        total += n
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    if not total:
        return 0, [], []
    pct = lambda c: [(f, 100 * n / total) for f, n in c.most_common(top)]  # noqa: E731
    return total, pct(inclusive), pct(own)


def mailbot_inclusive(folded: Path, top: int = 15) -> list[tuple[str, float]]:
    """Inclusive % of functions in mailbot/ only: where the product's own code spends."""
    total, _, _ = summarize(folded, 1)
    inclusive: Counter[str] = Counter()
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        for f in {_short(f) for f in stack.split(";")}:
            if "(mailbot/" in f:
                inclusive[f] += int(count)
    return [(f, 100 * n / total) for f, n in inclusive.most_common(top)] if total else []
