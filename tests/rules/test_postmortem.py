"""The postmortem review: the pure rule, then the flow through the pipeline to the sink."""

from __future__ import annotations

import datetime as dt

import pytest

from mailbot.models import Attachment, Fields, Incident, ParsedMail, SubjectTags
from mailbot.parsing.postmortem import find_blame, heading, parse_action_item
from mailbot.rules.postmortem import REQUIRED, review_postmortem

from tests.support.bot import GOOD_POSTMORTEM, LIST, declaration, load, message, state, utc, \
    write_config

TODAY = dt.date(2026, 3, 26)
HORIZON = TODAY + dt.timedelta(days=7)
SOON = "2026-03-30"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return load(write_config(tmp_path_factory.mktemp("pm"), relay_port=25))


def parsed(text: str, attachments=()) -> ParsedMail:
    return ParsedMail(
        key="k@example.com", message_id="k@example.com", from_address="bob@example.com",
        from_name="", envelope_sender=None, to=(LIST,), cc=(), subject="[POSTMORTEM] [INC-1]",
        date=None, in_reply_to=(), references=(), headers=(), content_type="text/plain",
        tags=SubjectTags(incident_id=1, postmortem=True), fields=Fields(), new_text=text,
        narrative=text, attachments=tuple(attachments))


INCIDENT = Incident(id=1, title="Checkout failing", status="resolved",
                    commander="jim.hopper@example.com", declared_by="alice@example.com")


def review(text: str, config, attachments=()):
    return review_postmortem(parsed(text, attachments), INCIDENT, config, TODAY)


def test_a_complete_postmortem_is_accepted(config):
    r = review(GOOD_POSTMORTEM.format(soon=SOON), config)
    assert r.accepted, r.reason()
    assert r.missing == () and r.blame == () and r.far_items == ()
    assert [(i.text, i.owner, i.due) for i in r.items] == [
        ("Add a CI check for pool limits", "bob@example.com", dt.date(2026, 3, 30)),
        ("Add checkout to the canary", "carol@example.com", dt.date(2026, 3, 30)),
    ]


_HEADINGS = {"cause": "## Cause", "impact": "## Impact", "resolution": "## Resolution",
             "prevention": "## Prevention", "action_items": "## Action items"}


@pytest.mark.parametrize("section", REQUIRED)
def test_each_missing_section_is_named(config, section):
    text = GOOD_POSTMORTEM.format(soon=SOON)
    start = text.index(_HEADINGS[section])
    end = text.find("\n## ", start + 1)
    without = text[:start] + (text[end + 1:] if end != -1 else "")
    r = review(without, config)
    assert not r.accepted
    assert r.missing == (section,)


def test_an_empty_section_or_a_template_hint_counts_as_missing(config):
    text = GOOD_POSTMORTEM.format(soon=SOON).replace(
        "Rolled back the configuration, restarted the checkout pods.",
        "<the steps taken to resolve it>")
    assert review(text, config).missing == ("resolution",)


@pytest.mark.parametrize("line, section", [
    ("Cause:", "cause"), ("## Root cause", "cause"), ("**Cause**", "cause"),
    ("**Root Cause:** a bad flag", "cause"), ("CAUSE", "cause"), ("1. Impact", "impact"),
    ("Steps taken to resolve:", "resolution"), ("### Steps taken", "resolution"),
    ("Steps to prevent recurrence:", "prevention"), ("__Prevention__", "prevention"),
    ("Action items (owner, due date):", "action_items"), ("## Follow-ups", "action_items"),
])
def test_heading_styles_and_synonyms(line, section):
    assert heading(line)[0] == section


@pytest.mark.parametrize("line", ["Impact was large for an hour", "The cause is unclear",
                                  "Resolution of the screen was low"])
def test_prose_that_starts_with_a_section_word_is_not_a_heading(line):
    assert heading(line) is None


@pytest.mark.parametrize("raw, owner, due", [
    ("Add alerting on queue depth — owner: bob@example.com — due: 2026-04-01",
     "bob@example.com", dt.date(2026, 4, 1)),
    ("Add alerting (owner: Bob Smith, due 2026-03-28)", "Bob Smith", dt.date(2026, 3, 28)),
    ("Fix the runbook | owner=alice | due=tomorrow", "alice", dt.date(2026, 3, 27)),
    ("@carol rotate the keys by 30 Mar", "carol", dt.date(2026, 3, 30)),
    ("Write docs [erin@example.com, 2026-03-29]", "erin@example.com", dt.date(2026, 3, 29)),
    ("Review dashboards, assigned to frank, deadline: April 2, 2026", "frank",
     dt.date(2026, 4, 2)),
    ("Add a canary - owner: dave@example.com - due in 3 days", "dave@example.com",
     dt.date(2026, 3, 29)),
])
def test_action_item_forms(raw, owner, due):
    item = parse_action_item(raw, TODAY, HORIZON)
    assert (item.owner, item.due) == (owner, due)
    assert item.problems == ()
    assert "owner" not in item.text.lower() and "due" not in item.text.lower()


def test_items_without_owner_or_due_are_rejected_by_name(config):
    text = GOOD_POSTMORTEM.format(soon=SOON) + "- Improve monitoring\n- Fix flaky test by 2026-03-29\n"
    r = review(text, config)
    assert not r.accepted
    assert [(i.raw, i.problems) for i in r.incomplete_items] == [
        ("Improve monitoring", ("owner", "due date")),
        ("Fix flaky test by 2026-03-29", ("owner",)),
    ]


def test_an_action_items_section_with_nothing_in_it_is_rejected(config):
    text = GOOD_POSTMORTEM.format(soon=SOON)
    text = text[:text.index("## Action items")] + "## Action items\nNone.\n"
    r = review(text, config)
    assert r.missing == () and r.no_items and not r.accepted


def test_items_beyond_the_horizon_are_flagged_but_accepted(config):
    text = GOOD_POSTMORTEM.format(soon=SOON) + \
        "- Re-architect the pool - owner: dave@example.com - due: 2026-06-30\n"
    r = review(text, config)
    assert r.accepted
    assert [i.text for i in r.far_items] == ["Re-architect the pool"]


BLAMEFUL = [
    "Jim pushed bad code to production.",
    "Alice forgot to renew the certificate.",
    "The outage happened because Bob didn't check the config.",
    "It was Carol's mistake.",
    "Alerting was off because dave@example.com disabled it.",
    "The cause was human error.",
    "Hopper broke the deploy.",  # a known person (the commander) with a weaker verb
]
BLAMELESS = [
    "Redis failed over to the replica.",
    "Bob deployed the fix at 10:05.",
    "Kafka failed to elect a leader.",
    "We deployed a broken build that CI did not catch.",
    "The deploy pipeline let an untested change through.",
    "GitHub Actions pushed the image.",
]


@pytest.mark.parametrize("sentence", BLAMEFUL)
def test_blame_sentences_are_found(sentence):
    notes = find_blame(sentence, {"jim", "hopper"})
    assert [n.sentence for n in notes] == [sentence]


@pytest.mark.parametrize("sentence", BLAMELESS)
def test_system_sentences_are_not_blame(sentence):
    assert find_blame(sentence, {"jim", "hopper"}) == ()


def test_blame_is_not_accepted_and_sentences_wrapped_over_lines_are_quoted_whole(config):
    text = GOOD_POSTMORTEM.format(soon=SOON).replace(
        "the rollout and the canary does not exercise checkout.",
        "the rollout because\nJim pushed bad code on a Friday.")
    r = review(text, config)
    assert not r.accepted
    assert r.reason() == "postmortem rejected: 1 blame-oriented sentence(s)"
    assert [b.person for b in r.blame] == ["Jim"]
    assert "because Jim pushed bad code on a Friday." in r.blame[0].sentence


def test_an_attached_markdown_postmortem_is_read(config):
    att = Attachment("postmortem.md", "text/markdown", 900,
                     text=GOOD_POSTMORTEM.format(soon=SOON))
    r = review("Postmortem attached.", config, [att])
    assert r.accepted and r.source == "postmortem.md"


# ---------------------------------------------------------------- through the pipeline


def _resolved_incident(bot):
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing", declaration(), message_id="root"))
    bot.clock.set(utc(2026, 3, 23, 11, 0))
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="resolved",
                                                              extra="Liaison: c@example.com")))
    bot.sink.take(2)


def test_a_rejected_postmortem_goes_to_the_sender_only_and_keeps_the_incident_open(make_bot):
    bot = make_bot(digest_time="23:30")
    _resolved_incident(bot)
    text = GOOD_POSTMORTEM.format(soon=SOON)
    text = text[:text.index("## Prevention")] + "## Action items\n- Improve monitoring\n"
    bot.clock.set(utc(2026, 3, 26, 9, 0))
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing", text, sender="bob@example.com"))
    [reply] = bot.sink.take(1)
    assert reply.kind == "postmortem_rejection" and reply.rcpt_tos == ["bob@example.com"]
    assert "Prevention (the steps to take" in reply.text
    assert '"Improve monitoring": no owner and no due date' in reply.text
    assert reply.subject == "[INC-1] Postmortem not accepted yet: Checkout failing"
    incident = bot.incident(1)
    assert incident.status == "resolved" and incident.postmortem is None
    assert incident.timeline[-1].kind == "postmortem-rejected"
    assert incident.rejected_count == 0  # kept, but no follow-up that missed the standard


def test_an_accepted_postmortem_awaits_its_review_and_tells_the_list(make_bot):
    bot = make_bot(digest_time="23:30")
    _resolved_incident(bot)
    text = GOOD_POSTMORTEM.format(soon=SOON) + \
        "- Rewrite the pool manager - owner: dave@example.com - due: 2026-07-01\n"
    bot.clock.set(utc(2026, 3, 26, 9, 0))
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing", "See attached.",
                        sender="bob@example.com",
                        attachments=(("pm.md", "text/markdown", text),)))
    [ack] = bot.sink.take(1)
    assert ack.kind == "postmortem_ack" and ack.rcpt_tos == [LIST]
    assert ack.subject == "[INC-1] Postmortem accepted, review pending: Checkout failing"
    assert "A1. Add a CI check for pool limits (owner bob@example.com, due 2026-03-30)" \
        in ack.text
    assert "A2. Add checkout to the canary" in ack.text
    # Past the horizon: quarterly planning, not an action item.
    assert "Moved to quarterly planning" in ack.text
    assert "- Rewrite the pool manager (owner dave@example.com, due 2026-07-01)" in ack.text
    incident = bot.incident(1)
    assert incident.status == "resolved" and incident.review_pending
    assert [(a.label, a.text) for a in incident.postmortem.action_items] == [
        ("A1", "Add a CI check for pool limits"), ("A2", "Add checkout to the canary")]
    assert [a.text for a in incident.postmortem.quarterly] == ["Rewrite the pool manager"]
    # Review pending: the reminders go on, now about the review.
    bot.tick(utc(2026, 3, 28, 12, 0))
    [reminder] = [m for m in bot.sink.take(len(bot.sink.unread()))
                  if m.kind == "reminder_postmortem"]
    assert reminder.subject == "[INC-1] Postmortem review pending: Checkout failing"
    assert "[REVIEWED] [INC-1]" in reminder.text


def test_blame_goes_back_to_its_author_alone_and_the_list_hears_nothing(make_bot):
    bot = make_bot(digest_time="23:30")
    _resolved_incident(bot)
    text = GOOD_POSTMORTEM.format(soon=SOON).replace(
        "Rolled back the configuration",
        "Priya forgot to upload the new IdP certificate. Sam should have set a calendar "
        "reminder. We rolled back the configuration")
    bot.clock.set(utc(2026, 3, 26, 9, 0))
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing", text,
                        sender="bob@example.com"))
    [reply] = bot.sink.take(1)
    assert reply.kind == "postmortem_rejection" and reply.rcpt_tos == ["bob@example.com"]
    assert "> Priya forgot to upload the new IdP certificate." in reply.text
    assert "> Sam should have set a calendar reminder." in reply.text
    assert "what the system failed to catch" in reply.text
    assert "Only you receive this mail" in reply.text
    incident = bot.incident(1)
    assert incident.postmortem is None and incident.status == "resolved"
    # Not even the timeline (shown on the site) quotes the sentences, in its note or in
    # the message text a rejected entry keeps; and the published page does not either.
    assert "Priya" not in incident.timeline[-1].note
    assert "blame-oriented" in incident.timeline[-1].note
    assert "Priya" not in (incident.timeline[-1].text or "")
    from mailbot.publish import publish_site
    from mailbot.services import load_services
    site = bot.config.storage.dir / "site-test"
    publish_site(site, [incident], load_services(bot.config.services_file), bot.config,
                 utc(2026, 3, 26, 9, 5))
    page = (site / "incidents" / "INC-1.html").read_text()
    assert "blame-oriented" in page and "Priya" not in page and "Sam should" not in page
    # A postmortem sent back is no follow-up that missed the standard: not "rejected".
    assert incident.rejected_count == 0


def test_blame_as_advice_is_accepted_but_still_told_to_the_author_alone(make_bot):
    bot = make_bot(digest_time="23:30", postmortem="blame_is_advice = true")
    _resolved_incident(bot)
    text = GOOD_POSTMORTEM.format(soon=SOON).replace(
        "Rolled back", "Priya forgot to upload the new IdP certificate. We rolled back")
    bot.clock.set(utc(2026, 3, 26, 9, 0))
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing", text,
                        sender="bob@example.com"))
    ack, note = bot.sink.take(2)
    assert ack.kind == "postmortem_ack" and ack.rcpt_tos == [LIST]
    assert "Priya" not in ack.text
    assert note.kind == "postmortem_blame_note" and note.rcpt_tos == ["bob@example.com"]
    assert "> Priya forgot to upload the new IdP certificate." in note.text
    assert bot.incident(1).review_pending


def _accepted(bot):
    _resolved_incident(bot)
    bot.clock.set(utc(2026, 3, 26, 9, 0))
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing",
                        GOOD_POSTMORTEM.format(soon=SOON), sender="bob@example.com"))
    bot.sink.take(1)


def test_reviewed_from_someone_else_is_a_private_note_and_changes_nothing(make_bot):
    bot = make_bot(digest_time="23:30")
    _accepted(bot)
    bot.receive(message("[REVIEWED] [INC-1] Checkout failing", "We went through it.",
                        sender="dave@example.com"))
    [note] = bot.sink.take(1)
    assert note.kind == "review_refused" and note.rcpt_tos == ["dave@example.com"]
    assert "cto@example.com" in note.text
    incident = bot.incident(1)
    assert incident.review_pending and incident.postmortem.reviewed_by == ""


@pytest.mark.parametrize("reviewer", ["cto@example.com", "alice@example.com"])
def test_reviewed_from_leadership_or_the_commander_records_it_and_closes(make_bot, reviewer):
    bot = make_bot(digest_time="23:30")
    _accepted(bot)
    bot.clock.set(utc(2026, 3, 27, 13, 0))
    bot.receive(message("[REVIEWED] [INC-1] Checkout failing", "Reviewed today.",
                        sender=reviewer))
    [ack] = bot.sink.take(1)
    assert ack.kind == "review_ack" and ack.rcpt_tos == [LIST]
    assert f"{reviewer} recorded the review" in ack.text
    incident = bot.incident(1)
    assert incident.status == "closed" and not incident.review_pending
    assert incident.postmortem.reviewed_by == reviewer
    assert incident.postmortem.reviewed_at == utc(2026, 3, 27, 13, 0)
    assert incident.timeline[-1].kind == "postmortem-reviewed"
    # Closed: no more postmortem reminders.
    bot.tick(utc(2026, 3, 29, 12, 0))
    assert all(m.kind != "reminder_postmortem" for m in bot.sink.unread())


def test_a_postmortem_for_an_incident_still_open_is_refused_and_changes_nothing(make_bot):
    bot = make_bot(digest_time="23:30")
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing", declaration(), message_id="root"))
    bot.sink.take(1)
    bot.clock.set(utc(2026, 3, 23, 10, 0))
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing",
                        GOOD_POSTMORTEM.format(soon=SOON), sender="bob@example.com"))
    [reply] = bot.sink.take(1)
    assert reply.kind == "rejection" and reply.rcpt_tos == ["bob@example.com"]
    assert "INC-1 is still open" in reply.text and '"Phase: resolved"' in reply.text
    incident = bot.incident(1)
    assert incident.status == "open" and incident.postmortem is None
    assert incident.resolved_at is None and incident.rejected_count == 1


def test_a_postmortem_sent_as_a_reply_without_the_tag_is_reviewed(make_bot):
    # A reply to "Postmortem due" whose thread link was lost (only the subject says what
    # it answers): it is plainly the postmortem, so it is reviewed as one.
    bot = make_bot(digest_time="23:30")
    _resolved_incident(bot)
    bot.clock.set(utc(2026, 3, 26, 9, 0))
    bot.receive(message("Re: [INC-1] Postmortem due: Checkout failing",
                        GOOD_POSTMORTEM.format(soon=SOON), sender="bob@example.com"))
    [reply] = bot.sink.take(1)
    assert reply.kind == "postmortem_ack" and reply.rcpt_tos == [LIST]
    assert bot.incident(1).review_pending


def test_a_reply_to_the_postmortem_reminder_is_the_postmortem(make_bot):
    bot = make_bot(digest_time="23:30")
    _resolved_incident(bot)
    bot.tick(utc(2026, 3, 23, 11, 5))  # the first postmortem reminder
    [reminder] = bot.sink.take(1)
    assert reminder.kind == "reminder_postmortem"
    reminder_id = reminder.message["Message-ID"].strip("<>")
    # Only two sections, as a first draft: reviewed (and sent back) as a postmortem, not
    # refused as a follow-up without severity.
    draft = GOOD_POSTMORTEM.format(soon=SOON)
    draft = draft[:draft.index("## Impact")] + draft[draft.index("## Action items"):]
    bot.clock.set(utc(2026, 3, 24, 9, 0))
    bot.receive(message("Re: [INC-1] Postmortem due: Checkout failing", draft,
                        sender="bob@example.com", in_reply_to=reminder_id))
    [reply] = bot.sink.take(1)
    assert reply.kind == "postmortem_rejection" and reply.rcpt_tos == ["bob@example.com"]
    assert "Impact" in reply.text and "Severity" not in reply.text.split("-- ")[0]
    # The whole postmortem, in the same thread: accepted, the incident closes.
    bot.receive(message("Re: [INC-1] Postmortem due: Checkout failing",
                        GOOD_POSTMORTEM.format(soon=SOON), sender="bob@example.com",
                        in_reply_to=reminder_id))
    [ack] = bot.sink.take(1)
    assert ack.kind == "postmortem_ack" and bot.incident(1).review_pending
    # "I will send it Friday" in the reminder's thread is no postmortem: a comment.
    bot2 = make_bot(name="bot2", digest_time="23:30")
    _resolved_incident(bot2)
    bot2.tick(utc(2026, 3, 23, 11, 5))
    [reminder] = bot2.sink.take(1)
    bot2.receive(message("Re: [INC-1] Postmortem due", "I will send it on Friday.",
                         sender="bob@example.com",
                         in_reply_to=reminder.message["Message-ID"].strip("<>")))
    assert bot2.incident(1).timeline[-1].kind == "comment"
    assert bot2.incident(1).status == "resolved"


def test_action_items_as_a_markdown_table():
    from mailbot.parsing.postmortem import item_lines

    section = ("| Item | Owner | Due |\n|:-----|-------|----:|\n"
               "| Add a CI check | bob@example.com | 2026-12-01 |\n"
               "| Add checkout to the canary | @carol | due: 2026-12-02 |\n")
    items = [parse_action_item(line, dt.date(2026, 11, 25), dt.date(2026, 12, 2))
             for line in item_lines(section)]
    assert [(i.text, i.owner, i.due) for i in items] == [
        ("Add a CI check", "bob@example.com", dt.date(2026, 12, 1)),
        ("Add checkout to the canary", "carol", dt.date(2026, 12, 2))]


def test_reviewed_before_any_postmortem_or_after_a_reopen_changes_nothing(make_bot):
    bot = make_bot(digest_time="23:30")
    _resolved_incident(bot)
    bot.receive(message("[REVIEWED] [INC-1]", "Done.", sender="cto@example.com"))
    [note] = bot.sink.take(1)
    assert note.kind == "review_refused" and note.rcpt_tos == ["cto@example.com"]
    assert "has no accepted postmortem yet" in note.text
    bot.clock.set(utc(2026, 3, 26, 9, 0))
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing",
                        GOOD_POSTMORTEM.format(soon=SOON), sender="bob@example.com"))
    bot.receive(message("Re: [INC-1] Checkout failing", state(phase="investigating",
                                                              narrative="It is back.")))
    bot.sink.take(len(bot.sink.unread()))
    bot.receive(message("[REVIEWED] [INC-1]", "Done.", sender="cto@example.com"))
    [note] = bot.sink.take(1)
    assert note.kind == "review_refused" and "was reopened" in note.text
    assert bot.incident(1).status == "open"
