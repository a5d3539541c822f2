"""Hostile and broken mail that used to stop the list (issue 13, items 1, 7 and 8):

- text that decodes to lone surrogates (utf-7, raw-unicode-escape, a literal `\\ud800`)
  could not be written to the store: the group rolled back, every later message was
  refused (ingest exit 70) and `serve`'s worker died while the daemon exited 0;
- a far-future or far-past `Date:` was stored as a time and broke `show` and `publish`;
- Message-IDs without brackets or with spaces were keyed by their last word with `@`,
  so two different messages became duplicates.

Through the real entry points: `mailbot ingest` as a subprocess, and SMTP to a running
`mailbot serve`.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.models import Incident, TimelineEntry
from mailbot.runtime import build_runtime
from mailbot.store import Store
from tests.support import (DECLARATION_BODY, REPO, SmtpSink, free_port, load, message,
                                wait_for, write_config)
from tests.support.chaos import ChaosDaemon, acks_by_reply_to, submit

SURROGATE = "\ud800"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], input=stdin,
                          capture_output=True, cwd=REPO, timeout=120)


def ingest(cfg: Path, tmp: Path, raw: bytes, name: str) -> subprocess.CompletedProcess:
    path = tmp / f"{name}.eml"
    path.write_bytes(raw)
    return run("ingest", str(path), "--config", str(cfg))


def spool_names(tmp: Path, folder: str) -> list[str]:
    d = tmp / "var" / "spool" / folder
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def assert_store_is_clean_utf8(tmp: Path) -> None:
    """Every stored file decodes as strict UTF-8 (a surrogate cannot be encoded)."""
    for path in (tmp / "var" / "db").rglob("*"):
        if path.is_file():
            path.read_bytes().decode("utf-8")  # raises on anything not UTF-8


def raw_mail(head: str, body: str) -> bytes:
    return (head.replace("\n", "\r\n") + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


HEAD = """From: alice@example.com
To: incidents@example.com
Date: Wed, 25 Nov 2026 10:00:00 +0000
Message-ID: <{mid}>"""

# Each decodes to a lone surrogate somewhere in what mailbot stores or renders.
POISON = {
    "utf-7 subject": raw_mail(HEAD + "\nSubject: [DECLARE] =?utf-7?q?+2AA-?= db down",
                              DECLARATION_BODY),
    "raw-unicode-escape subject": raw_mail(
        HEAD + "\nSubject: [DECLARE] =?raw-unicode-escape?q?=5Cud800?= db down",
        DECLARATION_BODY),
    "literal \\ud800 after an encoded word": raw_mail(
        HEAD + "\nSubject: [DECLARE] =?utf-8?q?caf=C3=A9?= \\ud800 db down", DECLARATION_BODY),
    "utf-7 body": raw_mail(
        HEAD + "\nSubject: [DECLARE] body in utf-7\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-7",
        DECLARATION_BODY.replace("Checkout is failing.", "Checkout +2AA- is failing.")),
    "utf-7 sender name": raw_mail(
        HEAD.replace("From: alice@example.com",
                     "From: =?utf-7?q?Al+2AA-ice?= <alice@example.com>")
        + "\nSubject: [DECLARE] sender name in utf-7", DECLARATION_BODY),
}


@pytest.mark.parametrize("case", sorted(POISON))
def test_poison_message_through_ingest_does_not_stop_the_list(tmp_path, case):
    cfg = write_config(tmp_path, smtp_port=free_port())
    poison = POISON[case].replace(b"{mid}", b"poison@x")
    first = ingest(cfg, tmp_path, poison, "poison")
    # Stored durably: exit 0 whatever the message holds (70 would make the MTA bounce).
    assert first.returncode == 0, first.stderr.decode()
    good = ingest(cfg, tmp_path, message("[DECLARE] the good one", DECLARATION_BODY,
                                         message_id="good@x"), "good")
    assert good.returncode == 0, good.stderr.decode()
    assert spool_names(tmp_path, "new") == []
    assert spool_names(tmp_path, "failed") == []  # readable text: processed, not parked
    assert_store_is_clean_utf8(tmp_path)
    listed = json.loads(run("incidents", "--json", "--config", str(cfg)).stdout)
    titles = {i["title"] for i in listed}
    assert "the good one" in titles and len(listed) == 2, titles
    text = json.dumps(listed, ensure_ascii=False)
    assert SURROGATE not in text
    for ref in ("INC-1", "INC-2"):
        shown = run("show", ref, "--config", str(cfg))
        assert shown.returncode == 0, shown.stderr.decode()
    site = run("publish", "--out", str(tmp_path / "site"), "--config", str(cfg))
    assert site.returncode == 0, site.stderr.decode()
    sent = list((tmp_path / "var" / "outbox-sent" / "new").iterdir())
    assert len(sent) == 2  # both acknowledged on the list


def test_poison_message_over_smtp_leaves_serve_running(tmp_path):
    sink = SmtpSink().start()
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port)
    daemon = ChaosDaemon(cfg, port).start()
    try:
        for case in sorted(POISON):
            submit(port, POISON[case].replace(b"{mid}", case.replace(" ", "-").encode()
                                              + b"@poison"))
        submit(port, message("[DECLARE] after the poison", DECLARATION_BODY,
                             message_id="after@x"))
        wait_for(lambda: "after@x" in acks_by_reply_to(sink), timeout=30,
                 what="the ack of the message after the poison")
        assert daemon.alive(), daemon.log()
        config = load_config(cfg)
        wait_for(lambda: not any((config.storage.spool_dir / "new").iterdir()),
                 what="the spool drained")
        assert not any((config.storage.spool_dir / "failed").iterdir())
        # Every poison message was processed too: each has its acknowledgement.
        wait_for(lambda: len(acks_by_reply_to(sink)) == len(POISON) + 1,
                 what="an ack for every poison message")
    finally:
        code = daemon.terminate()
        sink.stop()
    assert code == 0, daemon.log()
    assert_store_is_clean_utf8(tmp_path)


def test_a_message_whose_commit_raises_goes_to_failed_and_its_group_goes_on(tmp_path):
    """Defence behind the parser: if a plan still cannot be stored (here, a surrogate
    slipped into an incident title), only that message is parked; the others of its
    group are committed, in order."""
    config = load(tmp_path, smtp_port=free_port())
    rt = build_runtime(config)
    try:
        original = rt.planner.evaluate

        def unstorable(mail, received):
            plan = original(mail, received)
            if "unstorable" in mail.subject:
                for incident in plan.incidents:
                    incident.title += SURROGATE
            return plan

        rt.planner.evaluate = unstorable
        for i, subject in enumerate(["one", "two unstorable", "three", "four"]):
            rt.spool.put(message(f"[DECLARE] {subject}", DECLARATION_BODY,
                                 message_id=f"g{i}@x"), "pipe")
        rt.pipeline.process_pending()
        assert rt.spool.pending() == []
        failed = rt.spool.failed_names()
        assert len(failed) == 1
        assert "UnicodeEncodeError" in rt.spool.failure_reason(failed[0])
        titles = [i.title for i in rt.store.live_incidents()]
        assert titles == ["one", "three", "four"]
        assert [i.id for i in rt.store.live_incidents()] == [1, 2, 3]
        assert rt.store.check_integrity() == []
        # The list goes on: a later message is processed normally.
        rt.spool.put(message("[DECLARE] five", DECLARATION_BODY, message_id="g5@x"), "pipe")
        rt.pipeline.process_pending()
        assert [i.title for i in rt.store.live_incidents()][-1] == "five"
        # And the parked one, retried once the cause is gone, is processed once.
        rt.planner.evaluate = original
        rt.spool.retry(failed[0])
        rt.pipeline.process_pending()
        assert rt.spool.failed_names() == [] and rt.spool.pending() == []
        assert [i.title for i in rt.store.live_incidents()][-1] == "two unstorable"
    finally:
        rt.close()
    assert_store_is_clean_utf8(tmp_path)
    # What was written reads back in a new process's view of the store.
    store = Store(config.storage.db_dir)
    try:
        assert len(store.live_incidents()) == 5
    finally:
        store.close()


def test_serve_exits_non_zero_when_a_thread_dies_and_loses_nothing(tmp_path):
    """A worker thread that dies must end `serve` with a failure status, so that
    `Restart=on-failure` restarts it; the restart then finishes the message."""
    sink = SmtpSink().start()
    port = free_port()
    # No digest at start-up (with no incident): the first mail queued is the ack.
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port,
                       extra="\n[schedule]\ndigest_when_empty = false\n")
    # The first mail queued raises: after the group's commit, outside any one message.
    daemon = ChaosDaemon(cfg, port, crash_at="enqueued:1:raise").start()
    try:
        submit(port, message("[DECLARE] the worker dies", DECLARATION_BODY,
                             message_id="dies@x"))
        code = daemon.wait_dead(timeout=30)
        assert code != 0, daemon.log()
        assert code == 70, daemon.log()  # EX_SOFTWARE
        assert "worker" in daemon.log()
        restarted = ChaosDaemon(cfg, port).start()
        try:
            wait_for(lambda: "dies@x" in acks_by_reply_to(sink), timeout=30,
                     what="the ack after the restart")
        finally:
            assert restarted.terminate() == 0, restarted.log()
    finally:
        daemon.kill9_if_alive()
        sink.stop()
    assert len(acks_by_reply_to(sink)["dies@x"]) == 1
    config = load_config(cfg)
    assert not any((config.storage.spool_dir / "failed").iterdir())


# ---------------------------------------------------------------- item 7: far dates

FAR_DATES = ["Fri, 31 Dec 9999 23:59:59 -2359", "Mon, 1 Jan 0001 00:00:00 +2359",
             "Thu, 1 Jan 1970 00:00:00 +0000", "Sat, 25 Nov 2028 10:00:00 +0000"]


@pytest.mark.parametrize("date", FAR_DATES)
def test_far_date_is_kept_as_text_not_used_as_a_time(tmp_path, date):
    cfg = write_config(tmp_path, smtp_port=free_port())
    raw = message("[DECLARE] far date", DECLARATION_BODY, message_id="far@x",
                  headers={"Date": date})
    assert ingest(cfg, tmp_path, raw, "far").returncode == 0
    follow = message("Re: [INC-1] far date",
                     "Severity: SEV1\nPhase: mitigating\nCommander: alice@example.com\n\nx",
                     message_id="far2@x", headers={"Date": date})
    assert ingest(cfg, tmp_path, follow, "far2").returncode == 0
    shown = run("show", "INC-1", "--json", "--config", str(cfg))
    assert shown.returncode == 0, shown.stderr.decode()
    timeline = json.loads(shown.stdout)["timeline"]
    assert [e["kind"] for e in timeline] == ["declared", "updated"]
    assert all(e["message_date"] is None for e in timeline)
    assert json.loads(shown.stdout)["severity"] == "SEV1"  # the follow-up was applied
    text = run("show", "INC-1", "--config", str(cfg))
    assert text.returncode == 0, text.stderr.decode()
    site = run("publish", "--out", str(tmp_path / "site"), "--config", str(cfg))
    assert site.returncode == 0, site.stderr.decode()
    # Kept as text: `mailbot check` shows the Date as written and why it is not used.
    checked = run("check", str(tmp_path / "far.eml"), "--config", str(cfg))
    assert checked.returncode == 0, checked.stderr.decode()
    assert date in checked.stdout.decode(), checked.stdout.decode()


def test_a_date_within_the_window_is_still_used(tmp_path):
    cfg = write_config(tmp_path, smtp_port=free_port())
    written = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)
    date = written.strftime("%a, %d %b %Y %H:%M:%S +0000")
    raw = message("[DECLARE] late but fine", DECLARATION_BODY, message_id="late@x",
                  headers={"Date": date})
    assert ingest(cfg, tmp_path, raw, "late").returncode == 0
    timeline = json.loads(run("show", "INC-1", "--json", "--config", str(cfg)).stdout)["timeline"]
    assert timeline[0]["message_date"].startswith(written.strftime("%Y-%m-%dT%H:%M:%S"))


def test_far_date_over_smtp_does_not_break_serves_republish(tmp_path):
    sink = SmtpSink().start()
    port = free_port()
    site = tmp_path / "site"
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port,
                       extra=f'\n[publish]\ndir = "{site}"\n')
    daemon = ChaosDaemon(cfg, port).start()
    try:
        submit(port, message("[DECLARE] far date", DECLARATION_BODY, message_id="far@x",
                             headers={"Date": FAR_DATES[0]}))
        submit(port, message("[DECLARE] after it", DECLARATION_BODY, message_id="after@x"))
        wait_for(lambda: "after@x" in acks_by_reply_to(sink), what="the second ack")
        board = site / "index.html"
        wait_for(lambda: board.exists() and "after it" in board.read_text(errors="replace"),
                 timeout=30, what="the site republished with both incidents")
        assert "far date" in board.read_text(errors="replace")
        assert "publish to" not in daemon.log(), daemon.log()  # no failed publish
        assert daemon.alive(), daemon.log()
    finally:
        code = daemon.terminate()
        sink.stop()
    assert code == 0, daemon.log()


def test_a_far_date_stored_before_the_fix_no_longer_breaks_show_or_publish(tmp_path):
    """A store written by an older version may hold such a date as a time."""
    cfg = write_config(tmp_path, smtp_port=free_port())
    config = load_config(cfg)
    store = Store(config.storage.db_dir)
    try:
        far = dt.datetime(9999, 12, 31, 23, 59, 59,
                          tzinfo=dt.timezone(-dt.timedelta(hours=23, minutes=59)))
        now = dt.datetime(2026, 11, 25, 10, tzinfo=dt.timezone.utc)
        incident = Incident(id=1, title="old far date", declared_at=now, updated_at=now)
        incident.timeline.append(TimelineEntry(kind="declared", at=now, author="a@example.com",
                                               message_id="old@x", message_date=far))
        store.commit("old@x", incidents=[incident], next_incident_id=2, now=now)
        store.finish("old@x")
    finally:
        store.close()
    for args in (("show", "INC-1"), ("publish", "--out", str(tmp_path / "site"))):
        out = run(*args, "--config", str(cfg))
        assert out.returncode == 0, out.stderr.decode()


# ---------------------------------------------------------------- item 8: Message-ID keys

BROKEN_IDS = [
    ("<first note shared@example.com>", "<second note shared@example.com>"),
    ("first note alice@example.com", "second note alice@example.com"),
    ("alice@example.com", "alice@example.com (resent)"),
]


@pytest.mark.parametrize("ids", BROKEN_IDS)
def test_broken_message_ids_do_not_make_different_messages_duplicates(tmp_path, ids):
    cfg = write_config(tmp_path, smtp_port=free_port())
    for n, mid in enumerate(ids):
        raw = message(f"[DECLARE] broken id {n}", DECLARATION_BODY,
                      headers={"Message-ID": mid})
        out = ingest(cfg, tmp_path, raw, f"m{n}")
        assert out.returncode == 0, out.stderr.decode()
    listed = json.loads(run("incidents", "--json", "--config", str(cfg)).stdout)
    assert sorted(i["title"] for i in listed) == ["broken id 0", "broken id 1"]
    # The same message delivered again is still recognised as the one already processed.
    again = ingest(cfg, tmp_path, (tmp_path / "m1.eml").read_bytes(), "m1-again")
    assert again.returncode == 0
    assert len(json.loads(run("incidents", "--json", "--config", str(cfg)).stdout)) == 2
    assert spool_names(tmp_path, "new") == [] and spool_names(tmp_path, "failed") == []


@pytest.mark.parametrize("date", FAR_DATES)
def test_far_date_with_a_time_field_is_not_lost(tmp_path, date):
    """`Started-At: 09:50` is read relative to the Date:; a far one made parsing raise and
    the follow-up vanish as "no From", with no reply. It must reach the incident: applied,
    or refused to its sender with the time named as not understood."""
    cfg = write_config(tmp_path, smtp_port=free_port())
    assert ingest(cfg, tmp_path, message("[DECLARE] far", DECLARATION_BODY,
                                         message_id="fd1@x"), "fd1").returncode == 0
    follow = message("Re: [INC-1] far", "Severity: SEV1\nPhase: mitigating\n"
                     "Commander: alice@example.com\nStarted-At: 09:50\n\nrolled back",
                     message_id="fd2@x", headers={"Date": date})
    assert ingest(cfg, tmp_path, follow, "fd2").returncode == 0
    shown = json.loads(run("show", "INC-1", "--json", "--config", str(cfg)).stdout)
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds[0] == "declared" and len(kinds) == 2, kinds  # the follow-up was recorded
    assert not list((tmp_path / "var" / "spool" / "failed").glob("*"))


def test_a_strangers_message_cannot_take_a_colleagues_message_id(tmp_path):
    """A stranger sends first with the Message-ID a colleague's client or alerting tool
    will use (predictable ids exist). The stranger is ignored; the colleague's message
    with that id is still processed, threads by it, and is deduplicated when it comes
    again."""
    cfg = write_config(tmp_path, smtp_port=free_port())
    stranger = message("[DECLARE] fake", DECLARATION_BODY, sender="eve@evil.example",
                       message_id="alert-42@example.com")
    assert ingest(cfg, tmp_path, stranger, "eve").returncode == 0
    real = message("[DECLARE] Checkout down", DECLARATION_BODY, message_id="alert-42@example.com")
    assert ingest(cfg, tmp_path, real, "alice").returncode == 0
    listed = json.loads(run("incidents", "--json", "--config", str(cfg)).stdout)
    assert [i["title"] for i in listed] == ["Checkout down"]
    again = ingest(cfg, tmp_path, (tmp_path / "alice.eml").read_bytes(), "alice-again")
    assert again.returncode == 0
    assert len(json.loads(run("incidents", "--json", "--config", str(cfg)).stdout)) == 1
    # A reply to the colleague's message threads to its incident by that Message-ID.
    reply = message("Re: x", "Severity: SEV1\nPhase: mitigating\nCommander: alice@example.com",
                    message_id="r1@example.com",
                    headers={"In-Reply-To": "<alert-42@example.com>"})
    assert ingest(cfg, tmp_path, reply, "reply").returncode == 0
    shown = json.loads(run("show", "INC-1", "--json", "--config", str(cfg)).stdout)
    assert shown["severity"] == "SEV1"
