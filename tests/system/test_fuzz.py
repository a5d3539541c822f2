"""Fuzzing: corpus messages mutated (tests/support/fuzz.py) through `parse_mail`, the
rules and the composer in-process, and through the real SMTP ingress of `mailbot serve`.

In-process, every message must parse without the parser's last-resort catch firing, give
header-safe values and text that UTF-8 can hold, and be decided and rendered without an
exception into a plan the store can write (a message that would land in failed/ is a
bug). Through SMTP, the daemon must stay up, every accepted message must end processed
(archived, not pending, nothing in failed/), and the good declarations sent among the
fuzzed ones must each have their incident and acknowledgement.

CI: 3,000 hypothesis examples in-process and 300 messages over SMTP. Soak (`make soak`):
100,000 in-process (seeded random, faster than hypothesis at that count) and 5,000 over
SMTP. Each run prints its figures.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import json
import os
import random
import re
import resource
import smtplib
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mailbot.config import load_config
from mailbot.parsing import parse_mail
from mailbot.runtime import build_runtime
from tests.support import (DECLARATION_BODY, SmtpSink, free_port, load, message,
                                wait_for, write_config)
from mailbot.store import Store
from tests.support.fuzz import (LIST_TRAFFIC, OPS, hostile_ops, mutate, random_ops,
                                    seeds)
from tests.support.chaos import ChaosDaemon, acks_by_reply_to, proc_status_kb

SEEDS = seeds()
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone.utc)
LONG_LINE = re.compile(rb"[^\r\n]{990}")
EOL = re.compile(rb"\r\n|\r|\n")
UNSAFE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]")
GOOD_EVERY = 10  # over SMTP, one message in ten is a good declaration that must get through


class Harness:
    """A real runtime with one open incident (INC-1), so that tags and thread links reach
    enforcement and the composer. Only `evaluate` runs: it decides and renders, no writes."""

    def __init__(self, tmp) -> None:
        self.rt = build_runtime(load(tmp, smtp_port=free_port()))
        self.rt.spool.put(message("[DECLARE] fuzz base", DECLARATION_BODY,
                                  message_id="base@fuzz"), "pipe")
        self.rt.pipeline.process_pending()
        assert self.rt.store.get(1) is not None
        self.count = 0
        self.mails = 0

    def check(self, raw: bytes) -> None:
        self.count += 1
        parsed = parse_mail(raw, self.rt.pipeline.language)
        assert not any(d.startswith("parser error") for d in parsed.defects), parsed.defects
        for value in (parsed.subject, parsed.from_address, parsed.message_id, parsed.key,
                      parsed.tags.title, *parsed.in_reply_to, *parsed.references):
            assert not UNSAFE.search(value), f"control character in {value!r}"
        # No lone surrogate anywhere: UTF-8 (files, JSON, SMTP) cannot hold one.
        as_utf8(dataclasses.asdict(parsed))
        plan = self.rt.planner.evaluate(parsed, NOW)
        # What the store's commit writes: the incidents and the journal entry.
        as_utf8([i.to_dict() for i in plan.incidents])
        as_utf8({"key": parsed.key, "index": plan.index,
                 "outgoing": [m.to_dict() for m in plan.outgoing]})
        for mail in plan.outgoing:
            self.mails += 1
            head = mail.message.split(b"\r\n\r\n", 1)[0]
            assert all(len(line) <= 998 for line in mail.message.split(b"\r\n"))
            assert b"\nbcc:" not in head.lower() and b"\x00" not in head
            back = email.message_from_bytes(mail.message, policy=email.policy.default)
            assert back["Message-ID"] and back["Subject"] is not None
            assert not any(d for d in back.defects)


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def as_utf8(value) -> bytes:
    """`value` as the store writes JSON; raises if UTF-8 cannot hold it."""
    return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = Harness(tmp_path_factory.mktemp("fuzz"))
    yield h
    print(f"\nfuzz in-process: {h.count} messages, {h.mails} mails rendered, 0 crashes")
    h.rt.close()


mutation = st.tuples(st.sampled_from(OPS), st.floats(0, 1, exclude_max=True),
                     st.integers(0, 1 << 16))


@settings(max_examples=3000, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(base=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=10))
def test_fuzz_parse_rules_and_compose(harness, base, ops):
    harness.check(mutate(base, ops))


@pytest.mark.soak
def test_fuzz_in_process_soak(tmp_path):
    count = int(os.environ.get("MAILBOT_FUZZ_COUNT", "100000"))
    seed = int(os.environ.get("MAILBOT_FUZZ_SEED", time.time()))
    rng = random.Random(seed)
    h = Harness(tmp_path)
    started = time.monotonic()
    for i in range(count):
        base = rng.choice(SEEDS)
        ops = random_ops(rng)
        try:
            h.check(mutate(base, ops))
        except Exception as exc:
            raise AssertionError(f"seed {seed}, message {i}: base {SEEDS.index(base)}, "
                                 f"ops {ops!r}") from exc
    print(f"\nfuzz in-process soak (seed {seed}): {h.count} messages, {h.mails} mails "
          f"rendered, 0 crashes, peak RSS {peak_rss_mb():.0f} MB, "
          f"{time.monotonic() - started:.0f}s")


def fuzz_over_smtp(tmp_path, count: int, seed: int) -> str:
    sink = SmtpSink().start()
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port, cap=1_000_000)
    config = load_config(cfg)
    daemon = ChaosDaemon(cfg, port).start()
    rng = random.Random(seed)
    accepted: list[str] = []
    good: dict[str, str] = {}  # Message-ID -> title of the good declarations among them
    refused: dict[int, int] = {}
    started = time.monotonic()
    conn = None
    try:
        for i in range(count):
            if i % GOOD_EVERY == 0:
                mid, title = f"good-{seed}-{i}@fuzz", f"good {seed} {i}"
                good[mid] = title
                raw = message(f"[DECLARE] {title}", DECLARATION_BODY, message_id=mid)
            else:
                # On the wire, as an MTA sends it: CRLF line ends (smtplib sends bytes as
                # given, and the corpus files end lines with LF alone; bare CR/LF are
                # fuzzed in-process).
                if i % 3 == 0:  # hostile list traffic: what it does reaches the store
                    mutated = mutate(rng.choice(LIST_TRAFFIC), hostile_ops(rng))
                else:
                    mutated = mutate(rng.choice(SEEDS), random_ops(rng))
                raw = EOL.sub(b"\r\n", mutated)
                if rng.random() < 0.9:  # most within SMTP's line limit, so that they get in
                    raw = LONG_LINE.sub(lambda m: m.group(0) + b"\r\n", raw)
            if conn is None:
                conn = smtplib.SMTP("127.0.0.1", port, timeout=30)
                conn.ehlo()
            try:
                conn.mail("fuzz@example.com")
                conn.rcpt("incidents@example.com")
                code, resp = conn.data(raw)
            except smtplib.SMTPResponseException as exc:
                code, resp = exc.smtp_code, exc.smtp_error
            except smtplib.SMTPServerDisconnected as exc:
                raise AssertionError(f"seed {seed}, message {i}: the daemon hung up "
                                     f"(alive: {daemon.alive()})\n{daemon.log()}") from exc
            if code == 250:
                accepted.append(resp.decode().rsplit(" ", 1)[-1])
            else:
                assert i % GOOD_EVERY != 0, f"a good message was refused: {code} {resp}"
                # aiosmtpd refuses lines over 1000 octets (500) by RFC 5321: the sender
                # keeps such a message; it is not ours to lose.
                refused[code] = refused.get(code, 0) + 1
                assert code in (500, 552), (code, resp)
                conn.rset()
            assert daemon.alive(), daemon.log()
        conn.quit()
        spool = config.storage.spool_dir
        wait_for(lambda: not any((spool / "new").iterdir()), timeout=120,
                 what="the spool drained")
        assert daemon.alive(), daemon.log()
        failed = sorted((spool / "failed").glob("*.error"))
        assert not failed, failed[0].read_text()
        archived = {p.name for p in config.storage.archive_dir.glob("*/*")}
        lost = [n for n in accepted if n not in archived]
        assert not lost, f"accepted but never processed: {lost[:3]}"
        wait_for(lambda: set(good) <= set(acks_by_reply_to(sink)), timeout=120,
                 what="an acknowledgement for every good message")
        peak_kb = proc_status_kb(daemon.pid, "VmHWM")
    finally:
        code = daemon.terminate()
        sink.stop()
    assert code == 0, daemon.log()
    store = Store(config.storage.db_dir)
    try:
        titles = {i.title for i in store.all_incidents()}
    finally:
        store.close()
    missing = [mid for mid, title in good.items() if title not in titles]
    assert not missing, f"good messages without their incident: {missing[:3]}"
    return (f"{count} messages over SMTP (seed {seed}): {len(accepted)} accepted and "
            f"processed ({len(good)} good declarations among them, each acknowledged), "
            f"refused {refused or 'none'}, 0 in failed/, 0 daemon crashes, peak RSS "
            f"{peak_kb / 1024:.0f} MB, {time.monotonic() - started:.0f}s")


def test_fuzz_through_the_smtp_ingress(tmp_path):
    print("\nfuzz " + fuzz_over_smtp(tmp_path, 300, seed=7))


@pytest.mark.soak
def test_fuzz_through_the_smtp_ingress_soak(tmp_path):
    count = int(os.environ.get("MAILBOT_FUZZ_SMTP_COUNT", "5000"))
    print("\nfuzz soak " + fuzz_over_smtp(tmp_path, count, seed=int(time.time())))
