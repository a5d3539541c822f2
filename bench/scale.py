"""Per-message cost, start-up and memory with a large stored history.

The history is written straight into the store's layout with `Store.load_history` (one
file per closed incident, one index record per Message-ID appended to the index buckets,
~50 live incidents in the hot file), not by processing a million messages. Built once per
size under bench/out/scale/ and reused while store/, models.py and appendmap.py are
unchanged; the hot file is restored from a snapshot before every timed run, so runs do
not pile up on each other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import shutil
import subprocess
import time
from pathlib import Path

from harness import MAILBOT, OUT, REPO, Serve, free_port, write_config

LIVE = 50
IDS_PER_INCIDENT = 10  # processed Message-IDs per incident (half of them mailbot's own)
FRESH = 200
_T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def _layout_version() -> str:
    h = hashlib.sha1()
    for path in (*sorted((REPO / "mailbot" / "store").glob("*.py")),
                 REPO / "mailbot" / "models.py", REPO / "mailbot" / "appendmap.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def old_mid(inc: int, k: int) -> str:
    return f"hist{inc}.{k}@bench.example.com"


def _history(n: int):
    from mailbot.models import Change, Incident, TimelineEntry

    rng = random.Random(n)
    for inc in range(1, n + 1):
        at = _T0 + dt.timedelta(minutes=7 * inc)
        closed = inc <= n - LIVE
        who = f"user{inc % 40}@example.com"
        timeline = [TimelineEntry("declared", at, who, old_mid(inc, 0), at,
                                  (Change("severity", None, "SEV3"),
                                   Change("phase", None, "investigating")),
                                  "Something is slow.")]
        for k in range(1, 4):
            timeline.append(TimelineEntry("updated", at + dt.timedelta(minutes=10 * k), who,
                                          old_mid(inc, k), at,
                                          (Change("phase", "investigating", "mitigating"),),
                                          "Working on it; rolled back the deploy."))
        incident = Incident(
            id=inc, title=f"history incident {inc}", severity=f"SEV{rng.randint(1, 4)}",
            phase="resolved" if closed else "mitigating", commander=who,
            roles={"comms": "bob@example.com"}, channel=f"#inc-{inc}",
            summary="Something is slow.", customer_impact=False, services=("api",),
            declared_by=who, declared_at=at, updated_at=at + dt.timedelta(minutes=40),
            root_message_id=old_mid(inc, 0), timeline=timeline,
            status="closed" if closed else "open")
        if closed:
            incident.resolved_at = at + dt.timedelta(hours=1)
            incident.closed_at = at + dt.timedelta(days=2)
        yield incident


def _index(n: int):
    for inc in range(1, n + 1):
        for k in range(IDS_PER_INCIDENT // 2):
            yield old_mid(inc, k), {"processed": True, "outcome": "update", "incident": inc}
            yield f"mailbot.{inc}.{k}.ack.0@example.com", {"incident": inc, "own": True}


def build(n: int, log=print) -> Path:
    """The store for `n` incidents (reused when already built for this layout)."""
    root = OUT / "scale" / str(n)
    marker = root / "built.json"
    version = _layout_version()
    if marker.exists() and json.loads(marker.read_text()).get("version") == version:
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    write_config(root, smtp_port=8025, relay_port=None)  # port set per run
    from mailbot.store import Store

    t0 = time.monotonic()
    store = Store(root / "var" / "db")
    store.load_history(_history(n), _index(n), next_incident_id=n + 1)
    store.close()
    shutil.copy2(root / "var" / "db" / "hot.json", root / "hot.snapshot")
    marker.write_text(json.dumps({"version": version, "incidents": n,
                                  "message_ids": n * IDS_PER_INCIDENT}))
    log(f"  built the {n:,}-incident store in {time.monotonic() - t0:.1f}s")
    return root


def _restore(root: Path) -> None:
    var = root / "var"
    shutil.copy2(root / "hot.snapshot", var / "db" / "hot.json")
    for sub in ("spool", "outbox", "outbox-sent", "archive"):
        shutil.rmtree(var / sub, ignore_errors=True)


def fresh_messages(n: int, run: int) -> list[bytes]:
    """FRESH new messages against the history: declarations, tagged follow-ups to live
    incidents, and rejected follow-ups to closed ones (by tag, or by thread only)."""
    rng = random.Random(1000 * n + run)
    live = list(range(n - LIVE + 1, n + 1))
    closed = n - LIVE
    out = []
    for i in range(FRESH):
        mid = f"fresh{run}.{i}.{rng.getrandbits(32):08x}@bench.example.com"
        head = ["From: alice@example.com", "To: incidents@example.com",
                "Date: Wed, 25 Nov 2026 10:00:00 +0000", f"Message-ID: <{mid}>"]
        r = i % 10
        if r < 2:
            subject = f"[DECLARE] fresh incident {run}.{i}"
            body = ("Severity: SEV2\nPhase: investigating\nCommander: alice@example.com\n"
                    "Channel: #inc\nRoles: comms=bob@example.com\nServices: api\n"
                    "Summary: fresh\n\nCheckout is failing.\n")
        elif r < 8:
            inc = rng.choice(live)
            subject = f"Re: [INC-{inc}] history incident {inc}"
            head.append(f"In-Reply-To: <{old_mid(inc, 3)}>")
            body = ("Severity: SEV2\nPhase: mitigating\nCommander: alice@example.com\n\n"
                    "Rolled back.\n\n> Severity: SEV3\n> earlier text\n")
        elif r < 9:
            inc = rng.randint(1, closed)
            subject = f"Re: [INC-{inc}] history incident {inc}"
            body = "Severity: SEV2\nCommander: alice@example.com\n\nIs this back?\n"
        else:
            inc = rng.randint(1, closed)
            subject = f"Re: history incident {inc}"
            head.append(f"In-Reply-To: <{old_mid(inc, rng.randint(0, 4))}>")
            body = "Severity: SEV2\nCommander: alice@example.com\n\nSeeing this again?\n"
        head.insert(2, f"Subject: {subject}")
        out.append(("\r\n".join(head) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode())
    return out


def per_message_ms(root: Path, run: int, n: int) -> float:
    """spool.put_many + process_pending + deliver_due (Maildir) for FRESH messages,
    in-process. put_many spools them with one sync: a put each (two fsyncs) made the
    figure mostly the disk's fsync latency, which does not depend on the history and on
    this VM varied 2x from run to run (after building a store, say)."""
    from mailbot.config import load_config
    from mailbot.runtime import build_runtime

    _restore(root)
    messages = fresh_messages(n, run)
    rt = build_runtime(load_config(root / "mailbot.toml"))
    try:
        t0 = time.perf_counter()
        rt.spool.put_many(messages, "pipe")
        rt.pipeline.process_pending()
        rt.outbox.deliver_due()
        elapsed = time.perf_counter() - t0
        failed = rt.spool.failed_names()
        if failed:
            raise RuntimeError(f"{len(failed)} fresh message(s) failed: "
                               f"{rt.spool.failure_reason(failed[0])[-300:]}")
    finally:
        rt.close()
    return elapsed / len(messages) * 1000


def startup(root: Path) -> tuple[float, float]:
    """(seconds from process start to the SMTP port accepting, idle VmRSS MB after 1 s)."""
    _restore(root)
    port = free_port()
    write_config(root, smtp_port=port, relay_port=None)
    serve = Serve(root / "mailbot.toml", port, root / "serve.log").start()
    try:
        time.sleep(1.0)
        rss = serve.rss_mb()
    finally:
        serve.stop()
    return serve.startup_s, rss


def timed_command(root: Path, *args: str, timeout: float = 900) -> tuple[float, str]:
    _restore(root)
    t0 = time.monotonic()
    proc = subprocess.run([*MAILBOT, *args, "--config", str(root / "mailbot.toml")],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        return elapsed, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return elapsed, ""
