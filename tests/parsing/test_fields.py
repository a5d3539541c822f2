"""Body fields: keys and aliases, decoration, forgiving values, invalid values, roles."""

from __future__ import annotations

import pytest

from mailbot.models import InvalidField
from mailbot.parsing import Language, parse_mail, parse_phase, parse_severity
from tests.support.parsing_corpus import LANG, wrap


def fields_of(body: str, content_type: str = "text/plain"):
    return parse_mail(wrap(body.encode("utf-8"), content_type), LANG).fields


# ---------------------------------------------------------------- value readers


@pytest.mark.parametrize("text", ["SEV1", "sev1", "sev 1", "Sev-1", "S1", "s1", "1",
                                  "sev1 (critical)", "**SEV1**", "Severity 1", "SEV_1"])
def test_parse_severity_forgiving(text):
    assert parse_severity(text, LANG) == "SEV1"


@pytest.mark.parametrize("text", ["SEV9", "sev 0", "critical", "", "high", "11", "P1", "sev"])
def test_parse_severity_rejects(text):
    assert parse_severity(text, LANG) is None


def test_parse_severity_uses_configured_levels():
    lang = Language(prefix="OPS", severities=("P1", "P2"), phases=("open", "resolved"))
    assert parse_severity("p 2", lang) == "P2"
    assert parse_severity("2", lang) == "P2"
    assert parse_severity("sev 2", lang) == "P2"  # "sev"/"severity"/"level" always read
    assert parse_severity("X2", lang) is None
    assert parse_severity("P3", lang) is None


@pytest.mark.parametrize("text,expected", [
    ("Mitigating", "mitigating"), ("MONITORING", "monitoring"), ("resolved", "resolved"),
    ("identified - rolling back", "identified"), ("*investigating*", "investigating"),
    ("fixing", None), ("", None), ("not resolved", None),
])
def test_parse_phase(text, expected):
    assert parse_phase(text, LANG) == expected


# ---------------------------------------------------------------- keys and aliases


@pytest.mark.parametrize("key,field,value,expected", [
    ("Severity", "severity", "sev 2", "SEV2"),
    ("Sev", "severity", "S3", "SEV3"),
    ("Phase", "phase", "Identified", "identified"),
    ("Status", "phase", "monitoring", "monitoring"),
    ("Stage", "phase", "resolved", "resolved"),
    ("Commander", "commander", "alice@example.com", "alice@example.com"),
    ("IC", "commander", "Alice Smith <alice@example.com>", "Alice Smith <alice@example.com>"),
    ("Incident-Commander", "commander", "Alice", "Alice"),
    ("Incident Commander", "commander", "Alice", "Alice"),
    ("Channel", "channel", "#inc-42 on Slack", "#inc-42 on Slack"),
    ("Where", "channel", "https://meet.example.com/x", "https://meet.example.com/x"),
    ("Bridge", "channel", "+1 555 0100", "+1 555 0100"),
    ("Summary", "summary", "checkout returns 500", "checkout returns 500"),
    ("Issue", "summary", "db down", "db down"),
    ("What", "summary", "db down", "db down"),
    ("Impact", "impact", "EU customers cannot pay", "EU customers cannot pay"),
    ("Customer-Impact", "customer_impact", "yes", True),
    ("Customer-Facing", "customer_impact", "No", False),
    ("Customer Impact", "customer_impact", "true", True),
    ("Customer-Impact", "customer_impact", "false", False),
    ("Services", "services", "checkout, payments ,  search", ("checkout", "payments", "search")),
    ("Service", "services", "checkout", ("checkout",)),
    ("Postmortem-Owner", "postmortem_owner", "dave@example.com", "dave@example.com"),
])
def test_field_aliases(key, field, value, expected):
    f = fields_of(f"Update below.\n\n{key}: {value}\n")
    assert getattr(f, field) == expected
    assert [(fl.key, fl.field, fl.where) for fl in f.lines] == [(key, field, "new")]


@pytest.mark.parametrize("key,members,expected", [
    ("Roles", "comms=bob@x.com, liaison=carol@x.com, expert=dave@x.com",
     {"comms": "bob@x.com", "liaison": "carol@x.com", "expert": "dave@x.com"}),
    ("Involved", "scribe = Erin <erin@x.com>", {"scribe": "Erin <erin@x.com>"}),
    ("Members", "Tech Lead: frank@x.com; ops=gina@x.com",
     {"tech-lead": "frank@x.com", "ops": "gina@x.com"}),
    ("Roles", "expert=dave@x.com, expert=erin@x.com",
     {"expert": "dave@x.com", "expert-2": "erin@x.com"}),
    ("Roles", "bob@x.com", {"member": "bob@x.com"}),
])
def test_roles(key, members, expected):
    assert dict(fields_of(f"{key}: {members}\n").roles) == expected


@pytest.mark.parametrize("key,role", [
    ("Comms", "comms"), ("Liaison", "liaison"), ("Customer-Liaison", "customer-liaison"),
    ("Customer Liaison", "customer-liaison"), ("Scribe", "scribe"), ("Expert", "expert"),
    ("Ops", "ops"), ("Tech-Lead", "tech-lead"), ("Deputy", "deputy"),
])
def test_per_role_shorthand(key, role):
    f = fields_of(f"{key}: bob@example.com\n")
    assert dict(f.roles) == {role: "bob@example.com"}
    assert f.lines[0].field == "roles"


def test_roles_merge_and_later_statement_wins():
    f = fields_of("Roles: comms=bob@x.com, liaison=carol@x.com\nComms: dan@x.com\n")
    assert dict(f.roles) == {"liaison": "carol@x.com", "comms": "dan@x.com"}


def test_roles_continue_after_trailing_comma():
    f = fields_of("Roles: comms=bob@x.com,\n  liaison=carol@x.com\n\nThanks\n")
    assert dict(f.roles) == {"comms": "bob@x.com", "liaison": "carol@x.com"}


# ---------------------------------------------------------------- decoration


@pytest.mark.parametrize("line", [
    "Severity: SEV1", "severity: sev1", "SEVERITY:SEV1", "- Severity: SEV1",
    "* Severity: SEV1", "• Severity: SEV1", "1. Severity: SEV1", "*Severity:* SEV1",
    "**Severity**: SEV1", "**Severity:** **SEV1**", "__Severity__: SEV1", "Severity : SEV1",
    "  Severity:   SEV1  ", "Severity - SEV1", "Severity：SEV1", "`Severity`: `SEV1`",
    # HTML typed into a plain-text mail
    "<b>Severity:</b> SEV1", "<b>Severity</b>: SEV1", "- <strong>Severity:</strong> SEV1",
    "<B>Severity:</B> <b>SEV1</b>", "<em>Severity</em> - SEV1",
])
def test_decoration_is_ignored(line):
    assert fields_of(f"Hi all,\n\n{line}\n\nMore soon.\n").severity == "SEV1"


def test_html_bold_keys():
    body = ("<div>Update:</div><div><b>Severity:</b> sev 2</div>"
            "<div><strong>Phase</strong>: Mitigating</div>"
            "<p><b>Commander:</b> <a href=\"mailto:alice@example.com\">alice@example.com</a></p>")
    f = fields_of(body, "text/html")
    assert (f.severity, f.phase, f.commander) == ("SEV2", "mitigating", "alice@example.com")


def test_html_mailto_links_shown_as_names_keep_their_address():
    body = ('<p>Commander: <a href="mailto:grace@example.com">@Grace Liu</a></p>'
            '<p>Liaison: <a href="mailto:carol@example.com?subject=x">Carol Jones</a></p>'
            '<p>Comms: <a href="mailto:bob@example.com">bob@example.com</a></p>')
    f = fields_of(body, "text/html")
    assert f.commander == "Grace Liu <grace@example.com>"
    assert dict(f.roles) == {"liaison": "Carol Jones <carol@example.com>",
                             "comms": "bob@example.com"}


def test_html_bold_key_in_plain_text_mail():
    f = fields_of("Taking over.\n<b>Commander:</b> alice@example.com\n<b>Phase:</b> "
                  "mitigating\n")
    assert (f.commander, f.phase) == ("alice@example.com", "mitigating")
    # Other markup is not a key: no field is invented from it.
    assert fields_of("<div>Severity: SEV1</div>\n").severity is None


@pytest.mark.parametrize("blank", ["?", "TBD", "n/a", "N/A", "-", "unknown", "tba."])
def test_placeholders_are_not_values(blank):
    f = fields_of(f"Summary: {blank}\nImpact: {blank}\nChannel: {blank}\n"
                  f"Services: {blank}\nSeverity: {blank}\nPhase: {blank}\n")
    assert (f.summary, f.impact, f.channel, f.services, f.severity, f.phase) == (
        None, None, None, None, None, None)
    assert f.invalid == ()


@pytest.mark.parametrize("blank", ["unchanged", "(no change)", "same", "tbc", "???"])
def test_no_change_words_are_not_values(blank):
    f = fields_of(f"Commander: {blank}\nSummary: {blank}\nServices: {blank}\n")
    assert (f.commander, f.summary, f.services) == (None, None, None)


def test_old_to_new_notation_reads_the_new_value():
    f = fields_of("Severity: SEV2 -> SEV1\nPhase: identified → mitigating\n"
                  "Commander: alice@example.com => bob@example.com\n")
    assert (f.severity, f.phase, f.commander) == ("SEV1", "mitigating", "bob@example.com")


def test_placeholder_items_are_dropped_from_lists_and_none_is_no_impact():
    f = fields_of("Services: db, TBD, api\nCustomer-Impact: none\n")
    assert f.services == ("db", "api") and f.customer_impact is False


def test_prose_with_colons_is_not_a_field():
    f = fields_of("The status: well, we don't know yet.\nNote: severity unclear\n")
    assert f.lines == () and f.phase is None and f.severity is None


# ---------------------------------------------------------------- invalid and empty


def test_invalid_values_are_reported_with_choices():
    f = fields_of("Severity: SEV9\nPhase: fixing\nCustomer-Impact: maybe\n")
    assert f.severity is None and f.phase is None and f.customer_impact is None
    assert InvalidField("severity", "SEV9", LANG.severities) in f.invalid
    assert InvalidField("phase", "fixing", LANG.phases) in f.invalid
    assert InvalidField("customer_impact", "maybe", ("yes", "no")) in f.invalid


def test_last_statement_counts():
    assert fields_of("Severity: SEV2\nSeverity: SEV1\n").severity == "SEV1"
    f = fields_of("Severity: SEV2\nSeverity: SEV9\n")
    assert f.severity is None and [i.value for i in f.invalid] == ["SEV9"]
    f = fields_of("Severity: SEV9\nSeverity: SEV3\n")
    assert f.severity == "SEV3" and f.invalid == ()


def test_empty_and_placeholder_values_are_not_stated():
    f = fields_of("Severity:\nCommander: TBD\nPhase: \nLiaison: <name>\n")
    assert (f.severity, f.commander, f.phase, dict(f.roles), f.invalid) == (
        None, None, None, {}, ())
    assert len(f.lines) == 4


# ---------------------------------------------------------------- people


def test_person_values():
    assert fields_of("Commander:   Alice\t  Smith   <alice@example.com>\n").commander == (
        "Alice Smith <alice@example.com>")
    assert fields_of("IC: alice@example.com<mailto:alice@example.com>\n").commander == (
        "alice@example.com")
    assert fields_of("IC: Alice [mailto:alice@example.com]\n").commander == (
        "Alice <alice@example.com>")


def test_me_means_the_sender():
    f = fields_of("Commander: me\nScribe: myself\n")
    assert f.commander == "Alice <alice@example.com>"
    assert dict(f.roles) == {"scribe": "Alice <alice@example.com>"}


# ---------------------------------------------------------------- multi-line and narrative


def test_summary_continues_until_blank_line():
    body = ("Summary: checkout returns 500 for EU customers since the deploy\n"
            "of 14:05 UTC; payments are retried.\n"
            "Phase: identified\n\nWe are rolling back now.\n")
    parsed = parse_mail(wrap(body.encode()), LANG)
    f = parsed.fields
    assert f.summary == ("checkout returns 500 for EU customers since the deploy of 14:05 UTC; "
                         "payments are retried.")
    assert f.phase == "identified"
    assert parsed.narrative == "We are rolling back now."


def test_narrative_is_new_text_without_field_lines():
    body = ("Rolled back the deploy.\n\nSeverity: SEV2\nPhase: monitoring\n\nWatching errors.\n\n"
            "-- \nAlice\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Bob <bob@x.com> wrote:\n> Severity: SEV1\n")
    parsed = parse_mail(wrap(body.encode()), LANG)
    assert parsed.narrative == "Rolled back the deploy.\n\nWatching errors."
    assert parsed.fields.severity == "SEV2"
    assert [(fl.value, fl.where) for fl in parsed.fields.lines if fl.field == "severity"] == [
        ("SEV2", "new"), ("SEV1", "quoted")]


def test_fields_in_signature_are_ignored():
    body = "All good.\n\n-- \nAlice\nPhase: resolved\n"
    f = fields_of(body)
    assert f.phase is None
    assert [(fl.field, fl.where) for fl in f.lines] == [("phase", "signature")]


def test_inline_reply_fields_between_quotes_count():
    body = ("> Severity: SEV3\n> What is the phase?\n\nPhase: mitigating\n\n"
            "> Who leads?\n\nCommander: alice@example.com\n")
    f = fields_of(body)
    assert (f.severity, f.phase, f.commander) == (None, "mitigating", "alice@example.com")


def test_bottom_posted_fields_count():
    body = ("On Mon, Apr 2, 2012 at 6:26 PM, Bob <bob@x.com> wrote:\n> Severity: SEV3\n"
            "> Phase: investigating\n\nSeverity: SEV2\nPhase: identified\n")
    f = fields_of(body)
    assert (f.severity, f.phase) == ("SEV2", "identified")


# ---------------------------------------------------------------- guesses are not values


@pytest.mark.parametrize("line, field", [
    ("Phase: Resolved?", "phase"), ("Phase: maybe resolved", "phase"),
    ("Severity: SEV1??", "severity"), ("Severity: probably SEV2", "severity"),
    ("Commander: still Bob", "commander"), ("Commander: bob@example.com?", "commander"),
    ("Customer-Impact: yes?", "customer_impact"),
])
def test_a_value_with_a_question_mark_or_filler_word_is_not_understood(line, field):
    f = fields_of(f"{line}\n\nthanks")
    assert getattr(f, field) is None
    [bad] = f.invalid
    assert bad.field == field and bad.hedged and bad.value == line.split(": ", 1)[1]


@pytest.mark.parametrize("line, field, value", [
    ("Phase: resolved", "phase", "resolved"),
    ("Phase: mitigating - rollback half done", "phase", "mitigating"),
    ("Commander: Bob Still <bob@example.com>", "commander", "Bob Still <bob@example.com>"),
    ("Channel: https://meet.example.com/x?room=1", "channel",
     "https://meet.example.com/x?room=1"),
    ("Summary: is it the DB? maybe", "summary", "is it the DB? maybe"),
])
def test_a_plain_value_is_still_taken(line, field, value):
    f = fields_of(f"{line}\n\nthanks")
    assert getattr(f, field) == value and not f.invalid


def test_a_placeholder_is_blank_and_remembered_as_written():
    f = fields_of("Severity: SEV2\nPhase: mitigating\nCommander: unchanged\n\nok")
    assert f.commander is None and not f.invalid
    assert f.blanked == (("commander", "unchanged"),)
