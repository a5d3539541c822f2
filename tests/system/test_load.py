"""Load: 10 concurrent SMTP clients sending as fast as the daemon answers.

No transaction may fail, the daemon's memory must stay flat (VmRSS sampled through the
run), and every accepted message must be processed or still waiting in the spool. Latency
of the SMTP transaction (MAIL to the 250 after DATA, i.e. including the fsync) is printed
as p50/p99, with throughput and peak RSS; speed is not asserted.

CI: 5 s. Soak (`make soak`): 60 s.
"""

from __future__ import annotations

import os
import random
import smtplib
import statistics
import threading
import time

import pytest

from mailbot.config import load_config
from tests.support import DECLARATION_BODY, free_port, message, send, wait_for, write_config
from tests.support.chaos import ChaosDaemon, acks_by_reply_to, proc_status_kb

CLIENTS = 10
FOLLOW_UP = """Severity: SEV2
Phase: mitigating
Commander: alice@example.com

Still working on it: {n}.
"""


def traffic(rng: random.Random, client: int, n: int) -> bytes:
    """A list's mix: some declarations, mostly follow-ups, some chatter."""
    mid = f"load-{client}-{n}@x"
    roll = rng.random()
    if roll < 0.2:
        return message(f"[DECLARE] load {client}-{n}", DECLARATION_BODY, message_id=mid)
    if roll < 0.7:
        inc = rng.randint(1, 5)
        return message(f"Re: [INC-{inc}] load", FOLLOW_UP.format(n=n), message_id=mid,
                       headers={"In-Reply-To": f"<warm-{inc}@x>"})
    return message("lunch?", "Anyone for lunch at noon?\n", message_id=mid)


def client_loop(port: int, client: int, deadline: float, latencies: list[float],
                names: list[str], errors: list[str], lock: threading.Lock) -> None:
    rng = random.Random(client)
    n = 0
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as conn:
        conn.ehlo()
        while time.monotonic() < deadline:
            raw = traffic(rng, client, n)
            n += 1
            started = time.monotonic()
            try:
                conn.mail("alice@example.com")
                conn.rcpt("incidents@example.com")
                code, resp = conn.data(raw)
            except (smtplib.SMTPException, OSError) as exc:
                with lock:
                    errors.append(f"client {client}: {exc!r}")
                return
            took = time.monotonic() - started
            with lock:
                if code != 250:
                    errors.append(f"client {client}: {code} {resp!r}")
                else:
                    latencies.append(took)
                    names.append(resp.decode().rsplit(" ", 1)[-1])


def run_load(tmp_path, sink, seconds: float, max_growth_mb: float) -> str:
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port, cap=10_000_000)
    config = load_config(cfg)
    daemon = ChaosDaemon(cfg, port).start()
    try:
        for i in range(1, 6):  # INC-1..5 for the follow-ups to land on
            send(port, message(f"[DECLARE] warm {i}", DECLARATION_BODY, message_id=f"warm-{i}@x"))
        wait_for(lambda: all(f"warm-{i}@x" in acks_by_reply_to(sink) for i in range(1, 6)),
                 what="warm-up acks")
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                samples.append((time.monotonic(), proc_status_kb(daemon.pid, "VmRSS")))

        latencies: list[float] = []
        names: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()
        sampler = threading.Thread(target=sample, daemon=True)
        start_rss = proc_status_kb(daemon.pid, "VmRSS")
        started = time.monotonic()
        deadline = started + seconds
        threads = [threading.Thread(target=client_loop, args=(port, c, deadline, latencies,
                                                              names, errors, lock))
                   for c in range(CLIENTS)]
        sampler.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 60)
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join(5)
        assert daemon.alive(), daemon.log()
        assert errors == [], errors[:5]
        assert len(latencies) > 0
        spool = config.storage.spool_dir
        backlog = sum(1 for _ in (spool / "new").iterdir())
        peak_kb = proc_status_kb(daemon.pid, "VmHWM")
    finally:
        assert daemon.terminate() == 0, daemon.log()
    # Nothing accepted is lost: each name is processed (archived) or still waiting.
    archived = {p.name for p in config.storage.archive_dir.glob("*/*")}
    waiting = {p.name for p in (spool / "new").iterdir()}
    lost = [n for n in names if n not in archived and n not in waiting]
    assert not lost, lost[:3]
    assert list((spool / "failed").iterdir()) == []

    # Memory flat: the last quarter of the run is no higher than the first quarter by more
    # than a generous margin (the hot file and the spool backlog grow a little).
    rss = [kb for _, kb in samples]
    quarter = max(1, len(rss) // 4)
    early, late = max(rss[:quarter]), max(rss[-quarter:])
    growth_mb = (late - early) / 1024
    assert growth_mb < max_growth_mb, f"RSS grew {growth_mb:.0f} MB: {early} -> {late} kB"

    q = statistics.quantiles(latencies, n=100)
    return (f"{CLIENTS} clients, {elapsed:.0f}s: {len(latencies)} messages accepted "
            f"({len(latencies) / elapsed:.0f}/s), 0 errors; SMTP latency p50 "
            f"{q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms; daemon RSS start "
            f"{start_rss / 1024:.0f} MB, peak {peak_kb / 1024:.0f} MB, growth over the run "
            f"{growth_mb:+.0f} MB; spool backlog at the end {backlog}")


def test_load_ten_clients_short(tmp_path, sink):
    print("\nload (CI): " + run_load(tmp_path, sink, seconds=5, max_growth_mb=150))


@pytest.mark.soak
def test_load_ten_clients_for_a_minute(tmp_path, sink):
    seconds = float(os.environ.get("MAILBOT_LOAD_SECONDS", "60"))
    print("\nload (soak): " + run_load(tmp_path, sink, seconds=seconds, max_growth_mb=150))
