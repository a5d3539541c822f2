"""Fuzzing: corpus messages mutated (tests/reliability/fuzz.py) through `parse_mail`, the
rules and the composer in-process, and through the real SMTP ingress of `mailbot serve`.

In-process, every message must parse without the parser's last-resort catch firing, give
header-safe values, and be decided and rendered without an exception (a message that
would land in failed/ is a bug). Through SMTP, the daemon must stay up and every accepted
message must end processed: archived, not pending, nothing in failed/.

CI: 3,000 hypothesis examples in-process and 300 messages over SMTP. Soak (`make soak`):
100,000 in-process (seeded random, faster than hypothesis at that count) and 5,000 over
SMTP. Each run prints its figures.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import random
import re
import smtplib
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mailbot.config import load_config
from mailbot.parsing import parse_mail
from mailbot.runtime import build_runtime
from tests.core.support import (DECLARATION_BODY, SmtpSink, free_port, load, message,
                                wait_for, write_config)
from tests.reliability.fuzz import OPS, mutate, random_ops, seeds
from tests.reliability.support import ChaosDaemon

SEEDS = seeds()
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone.utc)
LONG_LINE = re.compile(rb"[^\r\n]{990}")
EOL = re.compile(rb"\r\n|\r|\n")
UNSAFE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]")


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
        plan = self.rt.planner.evaluate(parsed, NOW)
        for mail in plan.outgoing:
            self.mails += 1
            head = mail.message.split(b"\r\n\r\n", 1)[0]
            assert all(len(line) <= 998 for line in mail.message.split(b"\r\n"))
            assert b"\nbcc:" not in head.lower() and b"\x00" not in head
            back = email.message_from_bytes(mail.message, policy=email.policy.default)
            assert back["Message-ID"] and back["Subject"] is not None
            assert not any(d for d in back.defects)


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
          f"rendered, 0 crashes, {time.monotonic() - started:.0f}s")


def fuzz_over_smtp(tmp_path, count: int, seed: int) -> str:
    sink = SmtpSink().start()
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port, cap=1_000_000)
    config = load_config(cfg)
    daemon = ChaosDaemon(cfg, port).start()
    rng = random.Random(seed)
    accepted: list[str] = []
    refused: dict[int, int] = {}
    started = time.monotonic()
    conn = None
    try:
        for i in range(count):
            # On the wire, as an MTA sends it: CRLF line ends (smtplib sends bytes as given,
            # and the corpus files end lines with LF alone; bare CR/LF are fuzzed in-process).
            raw = EOL.sub(b"\r\n", mutate(rng.choice(SEEDS), random_ops(rng)))
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
    finally:
        code = daemon.terminate()
        sink.stop()
    assert code == 0, daemon.log()
    return (f"{count} messages over SMTP (seed {seed}): {len(accepted)} accepted and "
            f"processed, refused {refused or 'none'}, 0 in failed/, 0 daemon crashes, "
            f"{time.monotonic() - started:.0f}s")


def test_fuzz_through_the_smtp_ingress(tmp_path):
    print("\nfuzz " + fuzz_over_smtp(tmp_path, 300, seed=7))


@pytest.mark.soak
def test_fuzz_through_the_smtp_ingress_soak(tmp_path):
    count = int(os.environ.get("MAILBOT_FUZZ_SMTP_COUNT", "5000"))
    print("\nfuzz soak " + fuzz_over_smtp(tmp_path, count, seed=int(time.time())))
