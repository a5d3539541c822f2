"""Crash anywhere: `mailbot serve` killed with SIGKILL at every point of a message's way,
round after round, on the same storage. After each restart: every message that got 250 is
processed exactly once and acknowledged exactly once (one Message-ID; the relay hand-off
may repeat that same mail once per kill, see README "Guarantees"), and the store is sound.

The inner points come from mailbot's fault injection (MAILBOT_CRASH_AT, mailbot/faults.py):
the daemon kills itself at the n-th pass of a named point. Rounds named `kill` are the
outside view: SIGKILL from the test at a random moment of the burst.

Messages refused or cut off by a kill are sent again in the next round, like an MTA's
retry: a message spooled just before the kill (no 250 yet) then arrives twice and must
still be processed once.
"""

from __future__ import annotations

import os
import random
import smtplib
import threading
import time

import pytest

from mailbot.config import load_config
from mailbot.faults import POINTS
from tests.support import DECLARATION_BODY, free_port, message, wait_for, write_config
from tests.support.chaos import (ChaosDaemon, acks_by_reply_to, check_exactly_once,
                                       stop_quietly)

PER_ROUND = 10
CLIENTS = 3
# How many passes a point sees per message, roughly: a crash at pass n must come within a
# round (committed counts hot-file writes: one per group of messages, and the scheduler's).
MAX_PASS = {"spooled": PER_ROUND - 2, "committed": 2, "index-written": PER_ROUND,
            "enqueued": PER_ROUND - 2, "relay-accepted": PER_ROUND - 2,
            "marker-written": PER_ROUND - 2}


def title_of(mid: str) -> str:
    return f"chaos {mid}"


class Campaign:
    def __init__(self, tmp_path, sink, seed: int) -> None:
        self.port = free_port()
        self.cfg = write_config(tmp_path, smtp_port=self.port, relay_port=sink.port)
        self.config = load_config(self.cfg)
        self.sink = sink
        self.seed = seed
        self.rng = random.Random(seed)
        self.accepted: set[str] = set()
        self.attempted: set[str] = set()
        self.retry: list[str] = []  # refused or cut off: the "MTA" tries again
        self.kills = 0
        self.self_kills: dict[str, int] = {p: 0 for p in POINTS}
        self.counter = 0

    def may_repeat(self) -> int:
        # Any kill may fall between the relay's 250 and the sent-marker of the mail the
        # outbox thread has in hand (whatever point the worker thread died at): at most one
        # repeat per kill. test_outbox_relay_faults.py pins the marker-written case to zero.
        return self.kills

    def _burst(self, ids: list[str], daemon: ChaosDaemon, lock: threading.Lock,
               failed: list[str]) -> None:
        conn = None
        for mid in ids:
            try:
                if conn is None:
                    conn = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
                conn.sendmail("alice@example.com", ["incidents@example.com"],
                              message(f"[DECLARE] {title_of(mid)}", DECLARATION_BODY,
                                      message_id=mid))
            except (smtplib.SMTPException, OSError):
                conn = None
                with lock:
                    failed.append(mid)
                continue
            with lock:
                self.accepted.add(mid)
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def round(self, point: str) -> None:
        """One round: start (armed), burst, crash, restart clean, converge, check."""
        ids = self.retry + [f"r{self.counter}-{i}@chaos.example" for i in range(PER_ROUND)]
        self.counter += 1
        self.retry = []
        self.attempted.update(ids)
        crash_at = None
        if point != "kill":
            crash_at = f"{point}:{self.rng.randint(1, MAX_PASS[point])}"
        daemon = ChaosDaemon(self.cfg, self.port, crash_at).start()
        lock = threading.Lock()
        failed: list[str] = []
        try:
            threads = [threading.Thread(target=self._burst,
                                        args=(ids[c::CLIENTS], daemon, lock, failed))
                       for c in range(CLIENTS)]
            for t in threads:
                t.start()
            if point == "kill":
                # The outside view: SIGKILL once a random share of the burst is in.
                target = self.rng.randint(0, len(ids) - 1)
                wait_for(lambda: len(self.accepted & set(ids)) + len(failed) >= target,
                         timeout=30, what="part of the burst")
                daemon.kill9()
            for t in threads:
                t.join(60)
            if point != "kill":
                # The armed point is reached by the burst or by the outbox delivering it.
                code = daemon.wait_dead(timeout=30)
                assert code == -9, f"{crash_at}: exited {code}\n{daemon.log()}"
                self.self_kills[point] += 1
        finally:
            stop_quietly(daemon)
        self.kills += 1
        self.retry = sorted(failed)

        daemon = ChaosDaemon(self.cfg, self.port).start()
        try:
            wait_for(lambda: self.accepted <= set(acks_by_reply_to(self.sink)), timeout=60,
                     what=f"acks for every accepted message after {crash_at or 'kill'}")
            spool_new = self.config.storage.spool_dir / "new"
            queue = self.config.storage.outbox_dir / "queue"
            wait_for(lambda: not any(spool_new.iterdir()) and not any(queue.glob("*.json")),
                     timeout=60, what="spool and outbox drained")
        finally:
            assert daemon.terminate() == 0, daemon.log()
        check_exactly_once(self.sink, self.config, self.accepted, self.attempted,
                           self.may_repeat(), title_of)

    def finish(self) -> str:
        """Send what is still refused, converge once more; a summary line for the report."""
        if self.retry:
            daemon = ChaosDaemon(self.cfg, self.port).start()
            try:
                for mid in self.retry:
                    daemon_send(self.port, mid)
                    self.accepted.add(mid)
                wait_for(lambda: self.accepted <= set(acks_by_reply_to(self.sink)),
                         timeout=60, what="acks for the retried messages")
                queue = self.config.storage.outbox_dir / "queue"
                wait_for(lambda: not any(queue.glob("*.json")), what="outbox drained")
            finally:
                assert daemon.terminate() == 0, daemon.log()
        verdict = check_exactly_once(self.sink, self.config, self.accepted, self.attempted,
                                     self.may_repeat(), title_of)
        assert self.accepted == self.attempted  # every message got in, in the end
        return (f"{self.kills} kills ({', '.join(f'{p}={n}' for p, n in self.self_kills.items())}"
                f", outside={self.kills - sum(self.self_kills.values())}); "
                f"{len(self.accepted)} messages, {verdict.incidents} incidents, "
                f"{verdict.duplicates_on_wire} repeated relay hand-off(s)")


def daemon_send(port: int, mid: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail("alice@example.com", ["incidents@example.com"],
                   message(f"[DECLARE] {title_of(mid)}", DECLARATION_BODY, message_id=mid))


def test_crash_at_every_point_loses_nothing_and_repeats_nothing(tmp_path, sink):
    """CI: each inner point once, then one kill from outside."""
    campaign = Campaign(tmp_path, sink, seed=1)
    started = time.monotonic()
    for point in (*POINTS, "kill"):
        campaign.round(point)
    summary = campaign.finish()
    assert all(n == 1 for n in campaign.self_kills.values()), campaign.self_kills
    print(f"\nchaos (CI): {summary}; {time.monotonic() - started:.1f}s")


@pytest.mark.soak
def test_crash_anywhere_soak(tmp_path, sink):
    """Soak: 60 rounds, points and passes at random, a third of them kills from outside."""
    rounds = int(os.environ.get("MAILBOT_CHAOS_ROUNDS", "60"))
    campaign = Campaign(tmp_path, sink, seed=int(time.time()))
    started = time.monotonic()
    for _ in range(rounds):
        point = campaign.rng.choice([*POINTS, "kill", "kill", "kill"])
        campaign.round(point)
    summary = campaign.finish()
    assert campaign.kills == rounds
    print(f"\nchaos (soak, seed {campaign.seed}, {rounds} rounds): {summary}; "
          f"{time.monotonic() - started:.1f}s")
