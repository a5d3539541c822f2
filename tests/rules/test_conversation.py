"""The conversation with people under stress, through the real SMTP ingress: comments are
kept, not rejected; acks of routine updates are short; every mail links to the incident's
page; a block pasted from an older mail does not move the incident back; a misspelled
phase gets one "did you mean"."""

from __future__ import annotations

from mailbot.publish import publish_site
from tests.support import DECLARATION_BODY, drained, message, send, wait_for

URL = "https://status.example.com/ops/"
PAGE = "https://status.example.com/ops/incidents/INC-1.html"


def settle(d) -> None:
    wait_for(lambda: drained(d), what="daemon idle")


def post(d, sink, subject, body, *, sender="alice@example.com", mid=None, reply_to=None,
         expect=1):
    """Send one mail to the list; return the `expect` mails mailbot wrote about it."""
    headers = {"In-Reply-To": f"<{reply_to}>", "References": f"<{reply_to}>"} if reply_to else {}
    send(d.port, message(subject, body, sender=sender, message_id=mid, headers=headers),
         mail_from=sender)
    settle(d)
    return sink.take(expect)


def before_footer(text: str) -> list[str]:
    lines = text.splitlines()
    return [line for line in lines[:lines.index("-- ")] if line.strip()]


def declare(d, sink, body=DECLARATION_BODY):
    [ack] = post(d, sink, "[DECLARE] Checkout down", body, mid="d@x")
    return ack


# ---------------------------------------------------------------- comments


def test_a_message_without_fields_is_a_comment_kept_with_its_text(daemon, sink, tmp_path):
    declare(daemon, sink)
    declared = daemon.rt.store.get(1)
    question = "Marco, can I tell them it's rolling back?\nThe customer asks for an ETA."
    [note] = post(daemon, sink, "Re: [INC-1] Checkout down", question,
                  sender="carol@example.com", mid="c1@x", reply_to="d@x")
    # Not rejected, not answered on the list: one short private note to carol.
    assert note.rcpt_tos == ["carol@example.com"] and note.kind == "comment_note"
    assert note.message["Subject"] == "[INC-1] Checkout down"
    assert "not applied" not in note.text and "Missing" not in note.text
    assert len(before_footer(note.text)) <= 10
    assert "Phase: investigating" in note.text  # the three lines an update needs
    incident = daemon.rt.store.get(1)
    assert incident.rejected_count == 0
    assert incident.timeline[-1].kind == "comment"
    assert incident.timeline[-1].note == question
    # A comment is no update: the stale clock keeps running.
    assert incident.updated_at == declared.updated_at
    # Carol's second comment is kept without a reply; dave's first one gets his note.
    post(daemon, sink, "Re: [INC-1] Checkout down", "Thanks, passing it on.",
         sender="carol@example.com", mid="c2@x", reply_to="d@x", expect=0)
    [to_dave] = post(daemon, sink, "Re: [INC-1] Checkout down", "I can help with the DB.",
                     sender="dave@example.com", mid="c3@x", reply_to="d@x")
    assert to_dave.rcpt_tos == ["dave@example.com"]
    incident = daemon.rt.store.get(1)
    assert [e.kind for e in incident.timeline] == ["declared", "comment", "comment", "comment"]
    assert incident.rejected_count == 0
    # Its text is on the incident's page.
    out = tmp_path / "site"
    publish_site(out, daemon.rt.store.all_incidents(), daemon.rt.directory, daemon.rt.config,
                 daemon.rt.clock.now())
    page = (out / "incidents" / "INC-1.html").read_text()
    assert "can I tell them it&#39;s rolling back?" in page or \
        "can I tell them it's rolling back?" in page
    # Some fields but not the required ones: still a rejection, as before.
    [rejection] = post(daemon, sink, "Re: [INC-1] Checkout down", "Phase: mitigating",
                       sender="carol@example.com", mid="c4@x", reply_to="d@x")
    assert rejection.kind == "rejection" and "was not applied" in rejection.text
    assert daemon.rt.store.get(1).rejected_count == 1


# ---------------------------------------------------------------- short acks


BUSY_DECLARATION = """Severity: SEV2
Phase: investigating
Commander: Alice Smith <alice@example.com>
Roles: comms=bob@example.com, scribe=erin@example.com, expert=dave@example.com,
  expert=frank@example.com
Channel: #inc-checkout, bridge https://meet.example.com/abc
Summary: Checkout returns 500 for about 30% of EU requests.
Impact: EU customers cannot pay.
Customer-Impact: yes
Services: api, db

Checkout is failing.
"""

LONG_STORY = "\n".join(f"Step {n}: looked at thing {n} and it was fine." for n in range(1, 13))


def test_the_ack_of_a_routine_update_is_short_and_says_what_changed_first(daemon, sink):
    decl = declare(daemon, sink, BUSY_DECLARATION)
    # The declaration's ack says more: the full state and the experts.
    assert "Current state:" in decl.text and "Experts for the affected services:" in decl.text
    [ack] = post(daemon, sink, "Re: [INC-1] Checkout down",
                 "Severity: SEV2\nPhase: mitigating\nCommander: alice@example.com\n\n" +
                 LONG_STORY, reply_to="d@x")
    lines = before_footer(ack.text)
    assert len(lines) <= 20, "\n".join(lines)
    assert lines[0] == "Updated: INC-1 (SEV2, mitigating), by alice@example.com."
    assert lines[1:3] == ["What changed:", "  - phase: investigating -> mitigating"]
    assert lines.index("What changed:") < lines.index("In alice@example.com's words:") < \
        next(i for i, line in enumerate(lines) if line.startswith("Now: "))
    assert "Step 1: looked" in ack.text and "Step 12" not in ack.text
    assert any(line.startswith("Roles: comms=bob@example.com") for line in lines)
    # Still there: the missing liaison, who is on call, the way to the full state.
    assert any("liaison" in line.lower() and line.startswith("!!") for line in lines)
    assert any(line.startswith("On call: api: ") for line in lines)
    assert any("[STATUS]" in line for line in lines)
    # The severity definitions still end it.
    assert "Severity levels:" in ack.text.split("\n-- \n", 1)[1]


# ---------------------------------------------------------------- links


def test_every_mail_about_an_incident_links_to_its_page(make_daemon, sink):
    d = make_daemon(extra=f'[publish]\nurl = "{URL}"\n')
    ack = declare(d, sink)
    assert f"Incident page: {PAGE}" in ack.text
    [update] = post(d, sink, "Re: [INC-1] Checkout down",
                    "Severity: SEV1\nPhase: mitigating\nCommander: alice@example.com",
                    reply_to="d@x")
    [rejection] = post(d, sink, "Re: [INC-1] Checkout down", "Severity: SEV1",
                       sender="bob@example.com", reply_to="d@x")
    [note] = post(d, sink, "Re: [INC-1] Checkout down", "Is the EU region affected too?",
                  sender="bob@example.com", reply_to="d@x")
    [status] = post(d, sink, "[STATUS] [INC-1]", "", sender="bob@example.com")
    [board] = post(d, sink, "[STATUS]", "", sender="bob@example.com")
    for mail in (update, rejection, note, status, board):
        assert PAGE in mail.text, mail.kind


def test_without_a_publish_url_no_link_is_made_up(daemon, sink):
    ack = declare(daemon, sink)
    assert "Incident page" not in ack.text and "html" not in ack.text


# ---------------------------------------------------------------- no silent step back


PASTED = "Severity: SEV2\nPhase: investigating\nCommander: alice@example.com\n"


def test_a_block_pasted_from_an_older_mail_does_not_move_the_incident_back(daemon, sink):
    first_ack = declare(daemon, sink)
    first_ack_id = first_ack.message["Message-ID"].strip("<>")
    post(daemon, sink, "Re: [INC-1] Checkout down",
         "Severity: SEV2\nPhase: mitigating\nCommander: alice@example.com\n\nRolling back.",
         reply_to=first_ack_id)
    # Bob answers the declaration's ack and pastes its block: the state of two mails ago.
    [told] = post(daemon, sink, "Re: [INC-1] Checkout down",
                  PASTED + "\nLiaison: carol@example.com\n\nOn it.",
                  sender="bob@example.com", reply_to=first_ack_id)
    assert told.rcpt_tos == ["bob@example.com"] and told.kind == "rejection"
    assert 'phase: you wrote "investigating", it is now "mitigating"' in told.text
    assert "Phase: mitigating" in told.text  # the block to send holds today's phase...
    assert "liaison=carol@example.com" in told.text  # ... and what else bob said
    incident = daemon.rt.store.get(1)
    assert incident.phase == "mitigating" and incident.timeline[-1].kind == "rejected"
    # The same block, in reply to that note: bob means it, so it is applied, and the
    # ack to the list says the phase went back.
    [ack] = post(daemon, sink, "Re: [INC-1] Checkout down", PASTED,
                 sender="bob@example.com", reply_to=told.message["Message-ID"].strip("<>"))
    assert ack.rcpt_tos == ["incidents@example.com"]
    assert "The phase went BACK: mitigating -> investigating" in ack.text
    assert daemon.rt.store.get(1).phase == "investigating"


def test_a_backward_phase_written_afresh_is_applied_and_called_out(daemon, sink):
    declare(daemon, sink)
    [ack] = post(daemon, sink, "Re: [INC-1] Checkout down",
                 "Severity: SEV2\nPhase: monitoring\nCommander: alice@example.com",
                 reply_to="d@x")
    assert "BACK" not in ack.text
    latest = ack.message["Message-ID"].strip("<>")
    # A new statement (SEV1 is no older state) in reply to the latest ack: applied.
    [ack] = post(daemon, sink, "Re: [INC-1] Checkout down",
                 "Severity: SEV1\nPhase: mitigating\nCommander: alice@example.com\n\n"
                 "Errors are back.", reply_to=latest)
    assert ack.rcpt_tos == ["incidents@example.com"]
    first = before_footer(ack.text)
    assert first[0].startswith("Updated: INC-1 (SEV1, mitigating)")
    assert first[1].startswith("!! The phase went BACK: monitoring -> mitigating")


# ---------------------------------------------------------------- typos


def test_a_misspelled_phase_gets_one_did_you_mean_and_the_block_keeps_it(daemon, sink):
    declare(daemon, sink)
    [rejection] = post(daemon, sink, "Re: [INC-1] Checkout down",
                       "Severity: SEV2\nPhase: identifed\nCommander: alice@example.com",
                       reply_to="d@x")
    text = rejection.text
    assert 'Phase: "identifed" (did you mean "identified"?' in text
    assert "Missing" not in text  # not also listed as missing
    assert text.count("identifed") == 1
    assert "\nPhase: identified\n" in text  # the block to paste back keeps what was meant
    assert daemon.rt.store.get(1).phase == "investigating"


def test_a_misspelled_key_in_a_declaration_is_named_and_its_value_kept(daemon, sink):
    body = DECLARATION_BODY.replace("Severity: SEV2", "sevrity: 3")
    ack = declare(daemon, sink, body)
    assert ack.rcpt_tos == ["incidents@example.com"]
    assert '"sevrity:" (did you mean "Severity:"?' in ack.text
    assert "\nSeverity: SEV3\n" in ack.text  # in the block to fill in and send back
    assert daemon.rt.store.get(1).severity is None  # never applied on a guess


def test_only_word_values_get_a_guess():
    from mailbot.models import InvalidField
    from mailbot.rules.enforcement import meant_value

    phases = ("investigating", "identified", "mitigating", "monitoring", "resolved")
    assert meant_value(InvalidField("phase", "identifed", phases)) == "identified"
    assert meant_value(InvalidField("phase", "Mitigatng - rolling back", phases)) == \
        "mitigating"
    assert meant_value(InvalidField("phase", "fixing", phases)) is None
    assert meant_value(InvalidField("severity", "SEV9", ("SEV1", "SEV2"))) is None


def test_the_kind_of_a_mailbot_mail_is_read_from_its_message_id(daemon, sink):
    from mailbot.planning import own_kind

    ack = declare(daemon, sink)
    assert own_kind(ack.message["Message-ID"].strip("<>")) == "ack"
    assert own_kind("d@x") == "" and own_kind("mailbot@example.com") == ""


def test_a_publish_url_that_is_no_address_is_a_config_error(tmp_path):
    import pytest

    from mailbot.config import ConfigError
    from tests.support import free_port, load

    with pytest.raises(ConfigError, match="publish.url"):
        load(tmp_path, smtp_port=free_port(), extra='[publish]\nurl = "status.example.com"\n')
