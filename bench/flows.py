"""mailbot end to end: `mailbot ingest` with every file, `mailbot serve` over SMTP with
parallel clients, and reply latency at a steady offered load. Replies go to the Sink."""

from __future__ import annotations

import time
from pathlib import Path

from harness import (MAILBOT, REPO, OrderGate, Serve, Sink, free_port, fresh_dir,
                     percentile, run_measured, send_all, write_config)


def _check_clean(root: Path) -> str:
    failed = [p for p in (root / "var" / "spool" / "failed").glob("*")
              if not p.name.endswith(".error")]
    return f"{len(failed)} message(s) in spool/failed" if failed else ""


def ingest(items, sink: Sink, run: int, *, wrap: list[str] | None = None) -> dict:
    """One `mailbot ingest f1 ... fN` process; time from its start until it exited and
    the last reply reached the sink (it delivers its outbox before it exits)."""
    root = fresh_dir(f"ingest{run}")
    config = write_config(root, smtp_port=free_port(), relay_port=sink.port)
    files = []
    corpus = root / "corpus"
    corpus.mkdir()
    for item in items:
        path = corpus / f"{item.n:05d}.eml"
        path.write_bytes(item.raw)
        files.append(str(path))
    sink.reset()
    child = run_measured([*(wrap or []), *MAILBOT, "ingest", "--config", str(config), *files],
                         root / "ingest.log", cwd=REPO)
    if child.code != 0:
        raise RuntimeError(f"mailbot ingest exited {child.code}: {child.log_tail()}")
    last = sink.wait_replies([i.message_id for i in items], timeout=120)
    elapsed = max(last, child.exited) - child.started
    problem = _check_clean(root)
    if problem:
        raise RuntimeError(problem)
    return {"seconds": elapsed, "rate": len(items) / elapsed,
            "cpu_ms": 1000 * child.cpu_s / len(items)}


def serve(items, sink: Sink, run: int, clients: int = 4, *, profiler=None) -> dict:
    """`mailbot serve`, `clients` parallel SMTP connections sending the corpus in order.
    End to end: first send to the last reply at the sink. Accept: first send to last 250."""
    root = fresh_dir(f"serve{run}")
    port = free_port()
    config = write_config(root, smtp_port=port, relay_port=sink.port)
    daemon = Serve(config, port, root / "serve.log").start()
    try:
        sink.reset()
        prof = profiler(daemon.proc.pid) if profiler else None
        first, last_accept = send_all(port, items, clients, gate=OrderGate(items))
        last_reply = sink.wait_replies([i.message_id for i in items], timeout=300)
        if prof:
            prof.stop()
    finally:
        daemon.stop()
    problem = _check_clean(root)
    if problem:
        raise RuntimeError(problem)
    return {"e2e_rate": len(items) / (last_reply - first),
            "accept_rate": len(items) / (last_accept - first),
            "seconds": last_reply - first}


def latency(items, sink: Sink, run: int, rate: float = 50.0, seconds: float = 20.0) -> dict:
    """One SMTP connection offering `rate` msg/s for `seconds`; per message, the time from
    sendmail returning (250) to its reply reaching the sink (matched by In-Reply-To)."""
    import smtplib

    n = min(len(items), int(rate * seconds))
    items = items[:n]
    root = fresh_dir(f"latency{run}")
    port = free_port()
    config = write_config(root, smtp_port=port, relay_port=sink.port)
    daemon = Serve(config, port, root / "serve.log").start()
    accepted: dict[str, float] = {}
    try:
        sink.reset()
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            start = time.monotonic()
            for k, item in enumerate(items):
                due = start + k / rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                smtp.sendmail(item.sender, ["incidents@example.com"], item.raw)
                accepted[item.message_id] = time.monotonic()
            offered_for = time.monotonic() - start
        sink.wait_replies(list(accepted), timeout=120)
    finally:
        daemon.stop()
    with sink.cond:
        lat = [(sink.replies[m] - t) * 1000 for m, t in accepted.items()]
    return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat),
            "offered": n / offered_for, "n": n}
