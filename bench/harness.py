"""Real parts for the benchmarks: an SMTP sink that timestamps what it receives, a config
in a scratch directory, `mailbot serve` as a process, and small measuring helpers.

(Ideas from tests/support/__init__.py; bench/ does not import from tests/.)
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
PYTHON = Path(sys.executable)
MAILBOT = [str(PYTHON), "-m", "mailbot"]

_IN_REPLY_TO = re.compile(rb"^In-Reply-To:[ \t]*<([^>\r\n]*)>", re.I | re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.01, what: str = "condition"):
    """Poll `predicate` until true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class _SinkHandler:
    def __init__(self, sink: "Sink") -> None:
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        now = time.monotonic()
        data = envelope.original_content or envelope.content
        head = data.split(b"\r\n\r\n", 1)[0]
        m = _IN_REPLY_TO.search(head)
        with self.sink.cond:
            self.sink.count += 1
            if m:
                self.sink.replies.setdefault(m.group(1).decode("utf-8", "replace"), now)
            self.sink.cond.notify_all()
        return "250 OK"


@dataclass
class Sink:
    """The outgoing relay: a real aiosmtpd server on loopback, in this process.

    Keeps, per In-Reply-To, the monotonic time the first reply arrived."""

    port: int = field(default_factory=free_port)
    count: int = 0
    replies: dict[str, float] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)
    controller: Controller | None = None

    def start(self) -> "Sink":
        self.controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    def reset(self) -> None:
        with self.cond:
            self.count = 0
            self.replies = {}

    def wait_replies(self, message_ids, timeout: float) -> float:
        """Wait until every id in `message_ids` got a reply; return the last arrival."""
        wanted = set(message_ids)
        with self.cond:
            ok = self.cond.wait_for(lambda: wanted.issubset(self.replies), timeout)
            if not ok:
                missing = len(wanted - set(self.replies))
                raise TimeoutError(f"{missing} of {len(wanted)} replies did not reach the "
                                   f"sink within {timeout:.0f}s")
            return max(self.replies[m] for m in wanted)


# Every declaration in the corpus is customer-facing with a liaison, so each change of
# severity or phase also mails the liaison a customer-statement draft (issue 18's
# feature). `bench/run.py --one-reply-each` turns that off: each message then gets exactly
# one reply, the work code from before that feature did, for comparing batch figures.
CUSTOMER_STATEMENTS = True


def write_config(root: Path, *, smtp_port: int, relay_port: int | None) -> Path:
    """A config with its own storage dir; relay = the sink, or the Maildir when None."""
    relay = f'smtp_host = "127.0.0.1"\nsmtp_port = {relay_port}\n' if relay_port else ""
    text = f"""
[list]
address = "incidents@example.com"
bot_address = "mailbot@example.com"

[ingress.smtp]
host = "127.0.0.1"
port = {smtp_port}

[outbound]
{relay}retry_initial_seconds = 1
retry_max_seconds = 2

[storage]
dir = "{root / 'var'}"

[policy]
allowed_senders = ["example.com"]
max_mail_per_address_per_hour = 1000000
max_list_mail_per_hour = 1000000

[services]
file = "{REPO / 'config' / 'services.toml'}"

[logging]
level = "WARNING"
"""
    if not CUSTOMER_STATEMENTS:  # the section is left out otherwise: older code lacks it
        text += "\n[oncall]\ncustomer_statement = false\n"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "mailbot.toml"
    path.write_text(text)
    return path


@dataclass
class Measured:
    """One finished child process: exit code, monotonic start and exit, its rusage."""

    code: int
    started: float
    exited: float
    usage: resource.struct_rusage
    log: Path

    @property
    def cpu_s(self) -> float:
        return self.usage.ru_utime + self.usage.ru_stime

    def log_tail(self, n: int = 500) -> str:
        return self.log.read_text("utf-8", "replace")[-n:] if self.log.exists() else ""


def run_measured(argv: list[str], log: Path, *, cwd: Path | None = None) -> Measured:
    """Run `argv` to its end with stderr to the file `log` (a pipe left unread can fill
    and stall the child), timed, with its own CPU and peak RSS from `wait4`."""
    with open(log, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        exited = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(proc.returncode, started, exited, usage, log)


def fresh_dir(name: str) -> Path:
    path = OUT / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Serve:
    """`mailbot serve` as a child process."""

    def __init__(self, config: Path, port: int, log: Path, extra_args=()) -> None:
        self.config, self.port, self.log_path = config, port, log
        self.proc: subprocess.Popen | None = None
        self.extra_args = list(extra_args)
        self.started_at = 0.0
        self.startup_s = 0.0

    def start(self, timeout: float = 120.0) -> "Serve":
        log = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [*self.extra_args, *MAILBOT, "serve", "--config", str(self.config)],
            stdout=log, stderr=log, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mailbot serve exited ({self.proc.returncode}): "
                                   f"{self.log()}")
            return port_open(self.port)

        wait_for(up, timeout, interval=0.005, what="mailbot serve to listen")
        self.startup_s = time.monotonic() - self.started_at
        return self

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb_of_children() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def send_all(port: int, items, clients: int, *, on_accept=None, gate=None,
             timeout: float = 600.0) -> tuple[float, float]:
    """Send `items` over `clients` parallel SMTP connections, in corpus order from one
    shared queue. Returns (first send, last 250) in monotonic time.

    `gate(item)` is called before sending and returns when the item may go (so that a
    follow-up never overtakes its declaration); `on_accept(item, t)` after each 250."""
    lock = threading.Lock()
    position = [0]
    first = [None]
    last = [0.0]
    errors: list[BaseException] = []
    deadline = time.monotonic() + timeout

    def client() -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                while time.monotonic() < deadline:
                    with lock:
                        if position[0] >= len(items):
                            return
                        item = items[position[0]]
                        position[0] += 1
                    if gate:
                        gate.before(item)
                    t0 = time.monotonic()
                    with lock:
                        if first[0] is None or t0 < first[0]:
                            first[0] = t0
                    smtp.sendmail(item.sender, ["incidents@example.com"], item.raw)
                    t1 = time.monotonic()
                    if gate:
                        gate.after(item)
                    if on_accept:
                        on_accept(item, t1)
                    with lock:
                        last[0] = max(last[0], t1)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
            if gate:
                gate.abort()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"SMTP client failed: {errors[0]!r}")
    return first[0] or 0.0, last[0]


class OrderGate:
    """Keeps causal order across parallel clients: declarations are accepted one after
    another in corpus order (so INC numbers follow the corpus), and a follow-up is sent
    only after its incident's declaration got its 250. With follow-ups placed well after
    their declaration, the gate almost never waits."""

    def __init__(self, items) -> None:
        self.cond = threading.Condition()
        self.next_declaration = 1
        self.aborted = False

    def before(self, item) -> None:
        want = item.incident if item.kind == "declare" else item.incident + 1
        with self.cond:
            while self.next_declaration < want and not self.aborted:
                self.cond.wait(0.5)
            if self.aborted:
                raise RuntimeError("aborted")

    def after(self, item) -> None:
        if item.kind == "declare":
            with self.cond:
                self.next_declaration = item.incident + 1
                self.cond.notify_all()

    def abort(self) -> None:
        with self.cond:
            self.aborted = True
            self.cond.notify_all()


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)
