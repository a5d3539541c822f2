"""The incident language end to end through the real SMTP ingress: what is answered, what
is applied, and what is silently kept."""

from __future__ import annotations

import time
from email.utils import formatdate

from tests.support import DECLARATION_BODY, drained, message, send, wait_for

UPDATE = "Severity: SEV2\nPhase: mitigating\nCommander: alice@example.com\n\nRolling back."


def declare(d, sink, mid="d@x", subject="[DECLARE] Checkout down", body=DECLARATION_BODY):
    before = len(sink.received)
    send(d.port, message(subject, body, message_id=mid))
    return sink.wait_count(before + 1)[-1]


def settle(d) -> None:
    wait_for(lambda: drained(d), what="daemon idle")


def test_untagged_reply_is_matched_through_the_thread(daemon, sink):
    ack = declare(daemon, sink)
    ack_id = ack.message["Message-ID"]
    # A reply to mailbot's own ack, with the tag lost from the subject.
    send(daemon.port, message("Re: Checkout down", UPDATE, message_id="u1@x",
                              headers={"In-Reply-To": ack_id, "References": f"<d@x> {ack_id}"}))
    got = sink.wait_count(2)[-1]
    assert "[INC-1]" in got.message["Subject"] and got.rcpt_tos == ["incidents@example.com"]
    assert daemon.rt.store.get(1).phase == "mitigating"


def test_reply_keeping_declare_in_subject_updates_not_redeclares(daemon, sink):
    declare(daemon, sink)
    send(daemon.port, message("Re: [DECLARE] Checkout down", UPDATE, message_id="u2@x",
                              headers={"In-Reply-To": "<d@x>"}))
    sink.wait_count(2)
    assert [i.id for i in daemon.rt.store.live_incidents()] == [1]


def test_declaration_naming_another_incident_opens_a_new_one(daemon, sink):
    declare(daemon, sink)
    # Not a reply: the tag of an earlier incident is only mentioned.
    send(daemon.port, message("[DECLARE] Checkout down again, like [INC-1]",
                              DECLARATION_BODY, message_id="d2@x"))
    got = sink.wait_count(2)[-1]
    assert "[INC-2]" in got.message["Subject"] and got.rcpt_tos == ["incidents@example.com"]
    assert [i.id for i in daemon.rt.store.live_incidents()] == [1, 2]
    assert [e.kind for e in daemon.rt.store.get(1).timeline] == ["declared"]
    # Naming an incident that does not exist is no reason to refuse a declaration.
    send(daemon.port, message("[DECLARE] [INC-99] Search down", DECLARATION_BODY,
                              message_id="d3@x"))
    got = sink.wait_count(3)[-1]
    assert "[INC-3]" in got.message["Subject"]
    # In the thread of INC-1, both tags: a follow-up of INC-1, no fourth incident.
    send(daemon.port, message("Re: [INC-1] [DECLARE] Checkout down", UPDATE,
                              message_id="u3@x", headers={"In-Reply-To": "<d@x>"}))
    sink.wait_count(4)
    assert [i.id for i in daemon.rt.store.live_incidents()] == [1, 2, 3]
    assert daemon.rt.store.get(1).phase == "mitigating"
    store = daemon.rt.store
    # The mention stays in the new incident's title.
    assert store.get(2).title == "Checkout down again, like [INC-1]"
    # Replies in INC-2's thread, with the tag kept or with INC-2's own subject, are about
    # INC-2, not about the INC-1 the title mentions.
    send(daemon.port, message("Re: [DECLARE] Checkout down again, like [INC-1]",
                              UPDATE.replace("mitigating", "identified"), message_id="u4@x",
                              headers={"In-Reply-To": "<d2@x>"}))
    sink.wait_count(5)
    send(daemon.port, message("Re: [INC-2] Checkout down again, like [INC-1]",
                              UPDATE.replace("mitigating", "monitoring"), message_id="u5@x",
                              headers={"In-Reply-To": "<d2@x>"}))
    sink.wait_count(6)
    assert store.get(2).phase == "monitoring" and store.get(1).phase == "mitigating"
    assert [e.kind for e in store.get(2).timeline] == ["declared", "updated", "updated"]
    # A new [DECLARE] (no "Re:") sent with In-Reply-To of INC-1's declaration: a new
    # incident all the same, INC-1 untouched.
    send(daemon.port, message("[DECLARE] Search cluster down", DECLARATION_BODY,
                              message_id="d5@x", headers={"In-Reply-To": "<d@x>"}))
    got = sink.wait_count(7)[-1]
    assert got.message["Subject"] == "[INC-4] Search cluster down"
    assert [e.kind for e in store.get(1).timeline] == ["declared", "updated"]


def test_ack_names_the_experts_and_the_services_nobody_knows(daemon, sink):
    body = DECLARATION_BODY.replace("Roles:", "Services: postgres, frobnicator\nRoles:")
    ack = declare(daemon, sink, body=body).message.get_content()
    assert "Experts for the affected services:" in ack
    assert "  - Grace Liu <grace@example.com>: db on-call" in ack  # "postgres" is db
    assert "No experts known for: frobnicator" in ack
    # All services known: no such line.
    body = DECLARATION_BODY.replace("Roles:", "Services: db\nRoles:")
    ack = declare(daemon, sink, mid="d2@x", body=body).message.get_content()
    assert ": db on-call" in ack and "No experts known" not in ack


def test_auto_reply_bounce_and_echo_get_nothing(daemon, sink):
    ack = declare(daemon, sink)
    ooo = message("Re: [INC-1] Automatic reply: out of office", UPDATE, message_id="a1@x",
                  headers={"Auto-Submitted": "auto-replied"})
    send(daemon.port, ooo)
    bounce = message("Undelivered Mail Returned to Sender [INC-1]", UPDATE,
                     sender="MAILER-DAEMON@example.com", message_id="b1@x")
    send(daemon.port, bounce, mail_from="")
    report = message("[INC-1] delivery status", UPDATE, message_id="b2@x",
                     headers={"Content-Type": 'multipart/report; report-type=delivery-status; '
                                              'boundary="x"'})
    send(daemon.port, report)
    # The list echoes mailbot's own ack back to it, with a List-Id added.
    echoed = ack.data.replace(b"\r\n\r\n", b"\r\nList-Id: <incidents.example.com>\r\n\r\n", 1)
    send(daemon.port, echoed, mail_from="incidents-bounces@example.com")
    settle(daemon)
    assert len(sink.received) == 1
    incident = daemon.rt.store.get(1)
    assert incident.phase == "investigating" and incident.rejected_count == 0
    assert [e.kind for e in incident.timeline] == ["declared"]


def test_stranger_gets_nothing_and_changes_nothing(daemon, sink):
    declare(daemon, sink)
    send(daemon.port, message("Re: [INC-1] Checkout down", UPDATE.replace("SEV2", "SEV1"),
                              sender="mallory@evil.example", message_id="s1@x"),
         mail_from="mallory@evil.example")
    send(daemon.port, message("[DECLARE] fake incident", DECLARATION_BODY,
                              sender="mallory@evil.example", message_id="s2@x"),
         mail_from="mallory@evil.example")
    settle(daemon)
    assert len(sink.received) == 1
    assert [i.id for i in daemon.rt.store.live_incidents()] == [1]
    assert daemon.rt.store.get(1).severity == "SEV2"
    # ... but the message is archived.
    archived = list(daemon.rt.config.storage.archive_dir.glob("*/*"))
    assert any(b"mallory@evil.example" in p.read_bytes() for p in archived)


def test_dkim_required_trusts_only_the_configured_authserv_id(make_daemon, sink):
    d = make_daemon(policy='require_dkim = true\ntrusted_authserv_ids = ["mx.example.com"]')
    forged = message("[DECLARE] forged", DECLARATION_BODY, message_id="k1@x",
                     headers={"Authentication-Results":
                              "evil.example; dkim=pass header.d=example.com"})
    failing = message("[DECLARE] failing", DECLARATION_BODY, message_id="k2@x",
                      headers={"Authentication-Results":
                               "mx.example.com; dkim=fail header.d=example.com"})
    missing = message("[DECLARE] missing", DECLARATION_BODY, message_id="k3@x")
    other_domain = message("[DECLARE] other", DECLARATION_BODY, message_id="k5@x",
                           headers={"Authentication-Results":
                                    "mx.example.com; dkim=pass header.d=evil.example"})
    good = message("[DECLARE] signed", DECLARATION_BODY, message_id="k4@x",
                   headers={"Authentication-Results":
                            "mx.example.com; spf=pass; dkim=pass header.d=example.com"})
    for raw in (forged, failing, missing, other_domain, good):
        send(d.port, raw)
    got = sink.wait_count(1)
    settle(d)
    assert len(sink.received) == 1 and "signed" in got[0].message["Subject"]
    assert [i.title for i in d.rt.store.live_incidents()] == ["signed"]


def test_resolve_then_reopen_is_in_the_timeline(daemon, sink):
    declare(daemon, sink)
    send(daemon.port, message("Re: [INC-1] x", UPDATE.replace("mitigating", "resolved"),
                              message_id="r1@x"))
    first = sink.wait_count(2)
    resolved = first[-1].message
    # Every list mail about INC-1 has one subject, so mail clients keep one conversation;
    # what happened is the body's first line.
    assert resolved["Subject"] == first[0].message["Subject"] == "[INC-1] Checkout down"
    assert resolved.get_content().startswith("Resolved: INC-1 is resolved")
    assert daemon.rt.store.get(1).status == "resolved"
    # Written after the resolution (a Date: of now): it reopens. One written well before
    # the resolution and delivered late would not (see the test below).
    send(daemon.port, message("Re: [INC-1] x [INVESTIGATING]",
                              "Severity: SEV1\nCommander: alice@example.com\n\nIt is back.",
                              message_id="r2@x", headers={"Date": formatdate(usegmt=True)}))
    reopened = sink.wait_count(3)[-1].message
    assert reopened["Subject"] == "[INC-1] Checkout down"
    assert reopened.get_content().startswith("Reopened: INC-1 is open again (SEV1, investigating)")
    incident = daemon.rt.store.get(1)
    assert incident.status == "open" and incident.phase == "investigating"
    assert [e.kind for e in incident.timeline] == ["declared", "resolved", "reopened"]
    sev = [c for c in incident.timeline[-1].changes if c.field == "severity"]
    assert sev and sev[0].old == "SEV2" and sev[0].new == "SEV1"


def test_a_late_delivered_mail_written_before_the_resolution_does_not_reopen(daemon, sink):
    declare(daemon, sink)
    send(daemon.port, message("Re: [INC-1] x", UPDATE.replace("mitigating", "resolved"),
                              message_id="lr1@x", headers={"Date": formatdate(usegmt=True)}))
    sink.wait_count(2)
    written = formatdate(time.time() - 3 * 3600, usegmt=True)  # three hours ago
    send(daemon.port, message("Re: [INC-1] x", UPDATE, message_id="lr2@x",
                              sender="bob@example.com", headers={"Date": written}),
         mail_from="bob@example.com")
    got = sink.wait_count(3)[-1]
    assert got.rcpt_tos == ["bob@example.com"]
    assert "before INC-1 was resolved" in got.message.get_content().replace("\r\n", "\n")
    incident = daemon.rt.store.get(1)
    assert incident.status == "resolved" and incident.rejected_count == 1


def test_declaration_gaps_and_liaison_flag_are_in_the_ack(daemon, sink):
    ack = declare(daemon, sink, body="Customer-Impact: yes\n\nSomething is wrong.")
    body = ack.message.get_content()
    for item in ("Severity:", "Commander:", "Channel:", "Roles:"):
        assert item in body
    assert "left out" in body and "no customer liaison" in body
    gap_lines = [line for line in body.splitlines() if line.startswith("  - ")]
    assert len([line for line in gap_lines if "(Channel:)" in line or "(Roles:)" in line
                or "(Phase:)" in line]) == 3  # one missing item per line
    assert daemon.rt.store.get(1).status == "open"  # declaring never blocks


def test_invalid_severity_in_follow_up_lists_valid_levels(daemon, sink):
    declare(daemon, sink)
    send(daemon.port, message("Re: [INC-1] x", UPDATE.replace("SEV2", "SEV9"),
                              message_id="v1@x"))
    body = sink.wait_count(2)[-1].message.get_content()
    assert "SEV9" in body and "SEV1, SEV2, SEV3, SEV4" in body


def test_rejection_names_a_misspelled_key_and_keeps_what_was_stated(daemon, sink):
    declare(daemon, sink)
    send(daemon.port, message("Re: [INC-1] x",
                              "sevrity: sev 1\nPhase: monitoring\nIC: me\n"
                              "Liaison: carol@example.com\n\nLooks better.",
                              sender="bob@example.com", message_id="m1@x"),
         mail_from="bob@example.com")
    got = sink.wait_count(2)[-1]
    assert got.rcpt_tos == ["bob@example.com"]
    # The thread's subject, by the incident's title: a Reply goes to the list (Reply-To),
    # which must not read "Not applied"; the body's first line says it.
    assert got.message["Subject"] == "[INC-1] Checkout down"
    assert got.message["Reply-To"] == "incidents@example.com"
    body = got.message.get_content().replace("\r\n", "\n")
    assert body.lstrip().startswith("Your update to INC-1 was not applied")
    assert '"sevrity:" (did you mean "Severity:"?)' in body
    # The block to paste back carries what bob did state, the misspelled severity too:
    # pasted back as it is, it is the update he meant.
    assert "Severity: SEV1\nPhase: monitoring\nCommander: bob@example.com" in body
    assert "liaison=carol@example.com" in body
    # No summary was given: the block leaves it blank rather than offering the title,
    # which pasted back would have become a summary nobody wrote.
    assert "\nSummary: \n" in body
    incident = daemon.rt.store.get(1)
    assert incident.phase == "investigating" and incident.rejected_count == 1  # not applied


def test_what_changed_reads_as_words_and_a_restated_person_is_no_change(daemon, sink):
    declare(daemon, sink)  # commander alice@example.com
    send(daemon.port, message(
        "Re: [INC-1] x", "Severity: SEV2\nPhase: mitigating\n"
        "Commander: Alice Example <alice@example.com>\nServices: db, api\n"
        "Customer-Impact: no\n\nRolling back.", message_id="w1@x"))
    body = sink.wait_count(2)[-1].message.get_content().replace("\r\n", "\n")
    changed = body.split("What changed:\n", 1)[1].split("\n\n", 1)[0]
    assert "  - services: (none) -> db, api" in changed
    assert "  - customer impact: (none) -> no" in changed
    assert "commander" not in changed and "[" not in changed and "False" not in changed
    assert daemon.rt.store.get(1).commander == "alice@example.com"
    # Handing over to Bob with his address, then naming him by first name only (or the
    # old -> new way acks show changes): he keeps his address, and reminders reach him.
    send(daemon.port, message("Re: [INC-1] x", "Severity: SEV2\nPhase: mitigating\n"
                              "Commander: Bob Stone <bob@example.com>\n", message_id="w2@x"))
    sink.wait_count(3)
    send(daemon.port, message("Re: [INC-1] x", "Severity: SEV2 -> SEV1\nPhase: mitigating\n"
                              "IC: Bob\n", message_id="w3@x"))
    body = sink.wait_count(4)[-1].message.get_content().replace("\r\n", "\n")
    changed = body.split("What changed:\n", 1)[1].split("\n\n", 1)[0]
    assert changed == "  - severity: SEV2 -> SEV1"
    assert daemon.rt.store.get(1).commander == "Bob Stone <bob@example.com>"


def test_a_follow_up_naming_two_incidents_changes_neither(daemon, sink):
    declare(daemon, sink)
    declare(daemon, sink, mid="d2@x", subject="[DECLARE] Search down")
    send(daemon.port, message("Re: [INC-1] [INC-2] both fixed", UPDATE, message_id="b2@x",
                              sender="bob@example.com"), mail_from="bob@example.com")
    got = sink.wait_count(3)[-1]
    assert got.rcpt_tos == ["bob@example.com"]
    assert "names INC-1 and INC-2" in got.message.get_content().replace("\r\n", "\n")
    assert daemon.rt.store.get(1).phase == daemon.rt.store.get(2).phase == "investigating"
    # The same tag twice is one incident.
    send(daemon.port, message("Re: [INC-1] [INC-1] x", UPDATE, message_id="b3@x"))
    sink.wait_count(4)
    assert daemon.rt.store.get(1).phase == "mitigating"


def test_an_accepted_update_points_out_a_misspelled_key(daemon, sink):
    declare(daemon, sink)
    send(daemon.port, message("Re: [INC-1] x", UPDATE + "\nLiason: carol@example.com\n",
                              message_id="ms1@x"))
    body = sink.wait_count(2)[-1].message.get_content().replace("\r\n", "\n")
    assert 'Updated: INC-1' in body
    assert '"Liason:" (did you mean "Liaison:"?' in body
    assert "liaison" not in daemon.rt.store.get(1).roles


def test_status_request_answers_sender_only(daemon, sink):
    declare(daemon, sink)
    send(daemon.port, message("[STATUS]", "", sender="bob@example.com", message_id="q1@x"),
         mail_from="bob@example.com")
    got = sink.wait_count(2)[-1]
    assert got.rcpt_tos == ["bob@example.com"]
    assert "INC-1" in got.message.get_content()
    assert got.message["Subject"] == "Status: 1 open incident"
    # A resolved incident is listed, but not counted as open.
    declare(daemon, sink, mid="d2@x", subject="[DECLARE] Search down")
    send(daemon.port, message("Re: [INC-2] x", UPDATE.replace("mitigating", "resolved"),
                              message_id="r2@x"))
    sink.wait_count(4)
    send(daemon.port, message("[STATUS]", "", sender="bob@example.com", message_id="q2@x"),
         mail_from="bob@example.com")
    got = sink.wait_count(5)[-1]
    assert got.message["Subject"] == "Status: 1 open incident, 1 resolved"
    assert "INC-2" in got.message.get_content()


def test_hourly_cap_stops_a_runaway_conversation(make_daemon, sink):
    d = make_daemon(cap=3)
    send(d.port, message("[DECLARE] x", DECLARATION_BODY, message_id="c0@x"))
    for i in range(6):  # six incomplete follow-ups: each would earn a rejection
        send(d.port, message("Re: [INC-1] x", "Phase: mitigating", message_id=f"c{i + 1}@x",
                             sender="bob@example.com"), mail_from="bob@example.com")
    settle(d)
    to_bob = [r for r in sink.received if r.rcpt_tos == ["bob@example.com"]]
    assert len(to_bob) == 3
    assert d.rt.store.get(1).rejected_count == 6  # all kept, just not all answered


def test_mail_not_to_the_list_is_ignored_when_configured(make_daemon, sink):
    d = make_daemon(policy="accept_direct_to_bot = false")
    raw = message("[DECLARE] direct", DECLARATION_BODY, message_id="x1@x").replace(
        b"To: incidents@example.com", b"To: mailbot@example.com")
    send(d.port, raw, rcpt="mailbot@example.com")
    send(d.port, message("[DECLARE] via list", DECLARATION_BODY, message_id="x2@x"))
    sink.wait_count(1)
    settle(d)
    assert [i.title for i in d.rt.store.live_incidents()] == ["via list"]


def _munged(subject: str, body: str, mid: str, author: str | None,
            header: str = "X-Original-From") -> bytes:
    headers = {header: f"Somebody <{author}>"} if author else {}
    return message(subject, body, sender="Incidents list <incidents@example.com>",
                   message_id=mid, headers=headers)


REWRITING = ('from_rewriting_lists = [{address = "incidents@example.com", '
             'author_header = "X-Original-From"}]')


def test_a_list_that_rewrites_from_is_read_through_to_the_author(make_daemon, sink):
    # Google Groups (or Mailman's munge_from set up so): From is the list, the author is
    # kept in X-Original-From, and the config says so.
    daemon = make_daemon(policy=REWRITING)
    send(daemon.port, _munged("[DECLARE] Munged", DECLARATION_BODY, "m1@x",
                              "alice@example.com"))
    sink.wait_count(1)
    incident = daemon.rt.store.get(1)
    assert incident.declared_by == "alice@example.com"
    send(daemon.port, _munged("Re: [INC-1] Munged", "Severity: SEV1\n\nworse", "m2@x",
                              "bob@example.com"))
    got = sink.wait_count(2)[-1]
    assert got.rcpt_tos == ["bob@example.com"]  # the rejection goes to the author
    # A stranger posting through such a list, a post whose author is lost, and one whose
    # author is only in a header this list does not write get nothing and change
    # nothing: the list's own address is never an author.
    send(daemon.port, _munged("[DECLARE] stranger", DECLARATION_BODY, "m3@x",
                              "mallory@evil.example"))
    send(daemon.port, _munged("[DECLARE] anonymous", DECLARATION_BODY, "m4@x", None))
    send(daemon.port, _munged("[DECLARE] other header", DECLARATION_BODY, "m5@x",
                              "bob@example.com", header="Reply-To"))
    settle(daemon)
    assert len(sink.received) == 2
    assert [i.title for i in daemon.rt.store.live_incidents()] == ["Munged"]


def test_a_guessed_phase_or_commander_is_not_applied_and_says_why(daemon, sink):
    declare(daemon, sink)  # SEV2, investigating, commander alice@example.com
    send(daemon.port, message("Re: [INC-1] x", "Severity: SEV2\nPhase: Resolved?\n"
                              "Commander: still Bob\n\nLooks fixed, checking.",
                              message_id="h1@x"))
    body = sink.wait_count(2)[-1].message.get_content().replace("\r\n", "\n")
    assert body.lstrip().startswith("Your update to INC-1 was not applied")
    assert ('  - Phase: "Resolved?"\n'
            '    A question mark or a word like "still" makes it a guess: write the value alone\n'
            '    (one of investigating, identified, mitigating, monitoring, resolved). '
            'It is now "investigating".\n') in body
    assert ('  - Commander: "still Bob"\n'
            '    A question mark or a word like "still" makes it a guess: write the value '
            'alone. It is now "alice@example.com".\n') in body
    assert 'did you mean "resolved"' not in body and "Phase: resolved" not in body
    incident = daemon.rt.store.get(1)
    assert incident.status == "open" and incident.phase == "investigating"
    assert incident.commander == "alice@example.com"


def test_commander_unchanged_is_missing_and_the_rejection_shows_what_to_paste(daemon, sink):
    declare(daemon, sink)
    send(daemon.port, message("Re: [INC-1] x", "Severity: SEV2\nPhase: mitigating\n"
                              "Commander: unchanged\n\nRolling back.", message_id="u1@x"))
    body = sink.wait_count(2)[-1].message.get_content().replace("\r\n", "\n")
    assert ('  - who manages it (Commander:)\n'
            '    "unchanged" was read as blank: the standard asks for the value itself.\n'
            '    To keep the current one, paste:  Commander: alice@example.com\n') in body
    assert daemon.rt.store.get(1).phase == "investigating"  # not applied
