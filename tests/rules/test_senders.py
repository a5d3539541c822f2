"""No forged identity passes: Authentication-Results read per RFC 8601 from the raw
header, From read before display names are decoded, list addresses never authors, and
nobody outside the list and the allowed addresses mailed. Through the real entry points:
SMTP to a running daemon, and `mailbot ingest` / `mailbot tick` as processes."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.runtime import build_runtime
from tests.support import (DECLARATION_BODY, REPO, drained, free_port, load, message,
                                send, wait_for, write_config)

DKIM = 'require_dkim = true\ntrusted_authserv_ids = ["mx.example.com"]'


def settle(d) -> None:
    wait_for(lambda: drained(d), what="daemon idle")


def declare(d, subject: str, mid: str, **kw) -> None:
    send(d.port, message(subject, DECLARATION_BODY, message_id=mid, **kw))


def titles(d) -> list[str]:
    return [i.title for i in d.rt.store.live_incidents()]


# ---------------------------------------------------------------- item 2: forged results


def test_forged_authentication_results_are_not_believed(make_daemon, sink):
    d = make_daemon(policy=DKIM)
    forged = {
        # Decoded, this reads "mx.example.com"; the MTA that strips look-alikes of its
        # own header compares the raw token and lets it through.
        "encoded id": "=?utf-8?q?mx.example.com?=; dkim=pass header.d=example.com",
        # The text "dkim=pass ... header.d=" inside another method's value or a comment.
        "in a value": "mx.example.com; spf=pass "
                      "smtp.mailfrom=dkim=pass+header.d=example.com@evil.example",
        "in a comment": "mx.example.com; spf=pass (dkim=pass header.d=example.com) "
                        "smtp.mailfrom=evil.example",
        "quoted id": '"mx.example.com"; dkim=pass header.d=example.com',
    }
    for n, (what, value) in enumerate(forged.items()):
        declare(d, f"[DECLARE] forged {what}", f"f{n}@x",
                headers={"Authentication-Results": value})
    declare(d, "[DECLARE] signed", "f-ok@x",
            headers={"Authentication-Results": "mx.example.com; dkim=pass header.d=example.com"})
    sink.wait_count(1)
    settle(d)
    assert titles(d) == ["signed"]
    assert len(sink.received) == 1


# ---------------------------------------------------------------- item 3: real passes


def test_real_mta_passes_are_believed(make_daemon, sink):
    d = make_daemon(policy=DKIM)
    # OpenDKIM's own form (lists.ozlabs.org, see tests/parsing/test_authresults.py for the
    # archived message), the id and domain changed to this test's: a ";" in the comment.
    opendkim = ("mx.example.com;\r\n\tdkim=pass (2048-bit key; unprotected) "
                "header.d=example.com header.i=@example.com header.a=rsa-sha256 "
                "header.s=selector1 header.b=pOeguXgX;\r\n\tdkim-atps=neutral")
    # Gmail's form: no header.d, the signing domain in header.i.
    gmail = ("mx.example.com;\r\n       dkim=pass header.i=@example.com header.s=20230601 "
             "header.b=lhk5qU4z;\r\n       spf=pass (google.com: domain of alice@example.com "
             "designates 192.0.2.1 as permitted sender) smtp.mailfrom=alice@example.com")
    declare(d, "[DECLARE] opendkim", "o1@x", headers={"Authentication-Results": opendkim})
    declare(d, "[DECLARE] gmail", "o2@x", headers={"Authentication-Results": gmail})
    sink.wait_count(2)
    settle(d)
    assert sorted(titles(d)) == ["gmail", "opendkim"]


# ---------------------------------------------------------------- item 4: rewriting lists


def _via_list(subject: str, mid: str, list_address: str, author: str,
              extra: dict[str, str] | None = None) -> bytes:
    return message(subject, DECLARATION_BODY, message_id=mid,
                   sender=f"Someone via the list <{list_address}>",
                   headers={"X-Original-From": author, **(extra or {})})


def test_a_list_address_is_never_an_author_unless_configured(daemon, sink):
    # Nothing configured: a From of the list with an author header is nobody, whoever
    # wrote the header.
    send(daemon.port, _via_list("[DECLARE] as the list", "l1@x", "incidents@example.com",
                                "alice@example.com"))
    # A foreign list in the allowed domain that rewrites From: its address is a list's
    # (its List-Post and List-Id say so), not a person allowed to write.
    send(daemon.port, _via_list("[DECLARE] via ops", "l2@x", "ops@example.com",
                                "alice@example.com",
                                {"List-Id": "Ops team <ops.example.com>",
                                 "List-Post": "<mailto:ops@example.com>"}))
    send(daemon.port, _via_list("[DECLARE] via ops, List-Id only", "l3@x", "ops@example.com",
                                "alice@example.com", {"List-Id": "<ops.example.com>"}))
    declare(daemon, "[DECLARE] direct", "l4@x")
    sink.wait_count(1)
    settle(daemon)
    assert titles(daemon) == ["direct"]
    assert len(sink.received) == 1


def test_only_the_configured_lists_single_author_header_counts(make_daemon, sink):
    d = make_daemon(policy='from_rewriting_lists = [{address = "incidents@example.com", '
                           'author_header = "X-Original-From"}]')
    # The stranger wrote X-Original-From: alice himself; the list added its own with his
    # real address. Two copies: nobody can say which one the list wrote.
    raw = _via_list("[DECLARE] two authors", "a1@x", "incidents@example.com",
                    "mallory@evil.example").replace(
        b"X-Original-From:", b"X-Original-From: alice@example.com\r\nX-Original-From:", 1)
    send(d.port, raw)
    # Two addresses in the one header (Mailman adds the author to a Reply-To the sender
    # may have filled): not one author either.
    send(d.port, _via_list("[DECLARE] two in one", "a2@x", "incidents@example.com",
                           "alice@example.com, mallory@evil.example"))
    # The author header naming a list address is no author.
    send(d.port, _via_list("[DECLARE] list as author", "a3@x", "incidents@example.com",
                           "incidents@example.com"))
    send(d.port, _via_list("[DECLARE] via the list", "a4@x", "incidents@example.com",
                           "Alice <alice@example.com>"))
    sink.wait_count(1)
    settle(d)
    assert titles(d) == ["via the list"]
    assert d.rt.store.get(1).declared_by == "alice@example.com"
    assert len(sink.received) == 1


# ---------------------------------------------------------------- item 5: encoded names


def test_an_encoded_display_name_never_supplies_the_address(daemon, sink):
    # Decoded first, the display name holds "<alice@example.com>" and the header reads
    # as Alice's: the address must come from the raw header.
    for n, sender in enumerate([
            "=?utf-8?q?Alice_<alice@example.com>?= <eve@evil.example>",
            "=?utf-8?q?Alice_=3Calice@example.com=3E?= <eve@evil.example>",
            "=?utf-8?q?alice@example.com?=",
    ]):
        declare(daemon, f"[DECLARE] spoof {n}", f"e{n}@x", sender=sender)
    # An encoded name on a genuine address still works, and is shown decoded.
    declare(daemon, "[DECLARE] genuine", "e-ok@x",
            sender="=?utf-8?q?Alice_M=C3=BCller?= <alice@example.com>")
    ack = sink.wait_count(1)[0]
    settle(daemon)
    assert titles(daemon) == ["genuine"]
    assert daemon.rt.store.get(1).declared_by == "alice@example.com"
    assert len(sink.received) == 1 and ack.rcpt_tos == ["incidents@example.com"]


# ---------------------------------------------------------------- item 6: outside people


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], capture_output=True,
                          cwd=REPO, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_people_named_outside_are_recorded_shown_and_never_mailed(tmp_path: Path, sink):
    """100 forged declarations naming strangers as commander and postmortem owner, then
    resolved: one `mailbot tick` would have mailed all 200 of them."""
    cfg = write_config(tmp_path, smtp_port=free_port(), relay_port=sink.port)
    files = []
    for n in range(100):
        body = DECLARATION_BODY.replace(
            "Commander: alice@example.com",
            f"Commander: ic{n}@outside.example\nPostmortem-Owner: pm{n}@elsewhere.example")
        decl = tmp_path / f"d{n}.eml"
        decl.write_bytes(message(f"[DECLARE] forged {n}", body, message_id=f"d{n}@x"))
        done = tmp_path / f"r{n}.eml"
        done.write_bytes(message(f"Re: [INC-{n + 1}] forged {n}",
                                 f"Severity: SEV2\nPhase: resolved\n"
                                 f"Commander: ic{n}@outside.example\n", message_id=f"r{n}@x"))
        files += [decl, done]
    out = _run("ingest", *map(str, files), "--config", str(cfg))
    assert out.returncode == 0, out.stderr[-2000:]
    acks = sink.wait_count(200)
    # Shown: the declaration's acknowledgement names the commander as written.
    declared = [a for a in acks if a.subject == "[INC-1] forged 0"
                and a.text.startswith("Declared")]
    assert len(declared) == 1 and "ic0@outside.example" in declared[0].text
    out = _run("tick", "--config", str(cfg))
    assert out.returncode == 0, out.stderr[-2000:]
    got = sink.wait_count(300)
    reminders = [r for r in got if r.kind == "reminder_postmortem"]
    assert len(reminders) == 100
    outside = {rcpt for r in got for rcpt in r.rcpt_tos if not rcpt.endswith("@example.com")}
    assert outside == set()
    # Every reminder reached someone who may be mailed: the declarer, in place of them.
    assert {tuple(r.rcpt_tos) for r in reminders} == {("alice@example.com",)}
    assert all("outside.example" not in str(r.message["To"]) for r in reminders)
    # Recorded: the incident keeps them; the log names what was not mailed, by incident.
    shown = _run("show", "INC-7", "--json", "--config", str(cfg))
    assert b"ic6@outside.example" in shown.stdout and b"pm6@elsewhere.example" in shown.stdout
    assert b"INC-7: postmortem owner or commander pm6@elsewhere.example, " \
           b"ic6@outside.example not mailed" in out.stderr


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("entry, named", [
    ('"incidents@example.com"', b"must be a table"),
    ('{address = "incidents@example.com"}', b"author_header is required"),
    ('{address = "incidents@example.com", author_header = "From"}', b"not From or Sender"),
    ('{address = "not an address", author_header = "X-Original-From"}',
     b"is not an email address"),
    ('{address = "incidents@example.com", author_header = "X-Original-From", x = 1}',
     b"unknown key 'x'"),
])
def test_a_bad_rewriting_list_entry_is_one_line(tmp_path, entry, named):
    cfg = write_config(tmp_path, smtp_port=free_port(),
                       policy=f"from_rewriting_lists = [{entry}]")
    out = _run("check-config", "--config", str(cfg))
    assert out.returncode == 78, out.stdout
    assert named in out.stderr and b"from_rewriting_lists" in out.stderr
    assert out.stderr.decode().count("\n") == 1


def test_every_mail_is_built_without_outside_recipients(tmp_path, caplog):
    """The one place every mail is composed withholds them; a mail left without any
    recipient is not sent at all."""
    rt = build_runtime(load(tmp_path, smtp_port=free_port(),
                            extra='[postmortem]\nleadership = ["cto@board.example"]'))
    now = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
    try:
        with caplog.at_level(logging.WARNING, logger="mailbot.compose"):
            mail = rt.composer.compose(
                "status", name="x.status.0", now=now, incidents=[], missing_ref="",
                to=["eve@evil.example", "bob@example.com"],
                cc=["incidents@example.com", "cto@board.example", "pm@elsewhere.example"],
                **rt.planner.mail_context(None))
        assert mail.recipients == ("bob@example.com", "incidents@example.com",
                                   "cto@board.example")
        assert b"evil.example" not in mail.message and b"elsewhere" not in mail.message
        assert "eve@evil.example, pm@elsewhere.example" in caplog.text
        nobody = rt.composer.compose("status", name="x.status.1", now=now, incidents=[],
                                     missing_ref="", to=["eve@evil.example"],
                                     **rt.planner.mail_context(None))
        kept, notes = rt.planner.cap_outgoing([nobody, mail], now)
        assert kept == [mail] and notes == ["status not sent: no recipient mailbot may write to"]
    finally:
        rt.close()
