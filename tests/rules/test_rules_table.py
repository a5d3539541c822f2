"""The rules one message at a time, as tables: a real parsed message and the facts the
planner would look up go in, a Decision comes out. No daemon, no store, no sockets:
milliseconds each.

`route` (what a message is), `check_sender` (who may write) and `enforce` (the follow-up
standard), then the closed sets they decide with: every action has its handler, every
problem code its wording, every incident field its keys.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import fields as dc_fields

import pytest

from mailbot.config import load_config
from mailbot.models import (FIELD_KEYS, RECORDED_FIELDS, Action, Facts, Incident, Page,
                            Problem, Refusal)
from mailbot.parsing import Language, parse_mail
from mailbot.planning import Planner
from mailbot.rules import decide
from mailbot.rules.enforcement import enforce
from mailbot.rules.routing import route
from mailbot.rules.senders import check_sender
from tests.support import REPO

CONFIG = load_config(REPO / "config" / "mailbot.toml")
LANG = Language.from_config(CONFIG)
LIST = CONFIG.list.address
UTC = dt.timezone.utc
RESOLVED_AT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
STATE = "Severity: SEV2\nPhase: mitigating\nCommander: alice@example.com\n"


def parsed(subject: str, body: str = "", *, sender: str = "alice@example.com",
           to: str = LIST, date: str = "Wed, 25 Nov 2026 10:00:00 +0000",
           headers: dict[str, str] | None = None):
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}",
             "Message-ID: <m@example.com>", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    raw = ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()
    return parse_mail(raw, LANG)


def incident(status: str = "open", title: str = "Checkout down", n: int = 1,
             **kw) -> Incident:
    resolved = RESOLVED_AT if status != "open" else None
    return Incident(id=n, title=title, status=status, severity="SEV2", phase="mitigating"
                    if status == "open" else "resolved", commander="alice@example.com",
                    resolved_at=resolved, **kw)


def facts(about: Incident | None = None, incident_id: int | None = None, **kw) -> Facts:
    if about is not None and incident_id is None:
        incident_id = about.id
    return Facts(incident=about, incident_id=incident_id, **kw)


def policy(**changes):
    return dataclasses.replace(CONFIG, policy=dataclasses.replace(CONFIG.policy, **changes))


# ---------------------------------------------------------------- route


ROUTES = [
    # (what, subject, body, facts, action, problem)
    ("status request", "[STATUS]", "", facts(), Action.STATUS, None),
    ("declaration", "[DECLARE] Checkout down", STATE, facts(), Action.DECLARE, None),
    ("declaration naming an older incident", "[DECLARE] Down again, like [INC-1]", STATE,
     facts(incident(), in_incident_thread=False), Action.DECLARE, None),
    ("reply that kept [DECLARE], in the thread", "Re: [DECLARE] Checkout down", STATE,
     facts(incident(), via_thread=True, in_incident_thread=True), Action.UPDATE, None),
    ("two incidents in one subject", "[INC-1] [INC-2] both fixed", STATE,
     facts(incident()), Action.REJECT, Problem.SEVERAL_INCIDENTS),
    ("a second tag its title mentions", "[INC-2] Down again, like [INC-1]", STATE,
     facts(incident(n=2, title="Down again, like [INC-1]")), Action.UPDATE, None),
    ("postmortem without an incident", "[POSTMORTEM] notes", "Cause: x",
     facts(), Action.REJECT, Problem.POSTMORTEM_WITHOUT_INCIDENT),
    ("chatter", "lunch?", "anyone?", facts(), Action.ARCHIVE, None),
    ("unknown incident in the subject", "[INC-9] x", STATE, facts(incident_id=9),
     Action.REJECT, Problem.UNKNOWN_INCIDENT),
    ("thread of an unknown incident", "Re: x", STATE, facts(incident_id=9, via_thread=True),
     Action.ARCHIVE, None),
    ("review", "[REVIEWED] [INC-1] x", "", facts(incident("resolved")), Action.REVIEWED, None),
    ("done", "[DONE] [INC-1] x", "Done: A1", facts(incident("resolved")), Action.DONE, None),
    ("done, answering an item's reminder", "Re: [INC-1] x", "Done: A1",
     facts(incident("resolved"), answers="reminder_action_item"), Action.DONE, None),
    ("'Done:' anywhere else is an update", "Re: [INC-1] x", "Done: A1",
     facts(incident("resolved")), Action.UPDATE, None),
    ("postmortem of an open incident", "[POSTMORTEM] [INC-1] x", "Cause: x",
     facts(incident()), Action.REJECT, Problem.POSTMORTEM_BEFORE_RESOLVED),
    ("postmortem", "[POSTMORTEM] [INC-1] x", "Cause: x", facts(incident("resolved")),
     Action.POSTMORTEM, None),
    ("follow-up", "Re: [INC-1] x", STATE, facts(incident()), Action.UPDATE, None),
    ("follow-up stating nothing (comments.py decides later)", "Re: [INC-1] x", "thanks",
     facts(incident()), Action.UPDATE, None),
]


@pytest.mark.parametrize("what,subject,body,fact,action,problem", ROUTES,
                         ids=[r[0] for r in ROUTES])
def test_route(what, subject, body, fact, action, problem):
    got = route(parsed(subject, body), fact, CONFIG, None)
    assert (got.action, got.details.get("problem")) == (action, problem), got.reason
    # A declaration gets its id when it is applied; chatter belongs to no incident.
    expected_id = None if action in (Action.DECLARE, Action.ARCHIVE) else fact.incident_id
    assert got.incident_id == expected_id


# ---------------------------------------------------------------- check_sender


PAGED = incident(pages=(Page(target="db", person="dana@partner.test", name="Dana",
                             at=RESOLVED_AT, service="db", sent_to="pager@partner.test"),))
_AR_PASS = "mx.example.com; dkim=pass header.d=example.com; spf=pass"
_AR_FORGED = "mx.elsewhere.test; dkim=pass header.d=example.com"

SENDERS = [
    # (what, message keywords, config, facts, ignored?)
    ("an allowed domain", {}, CONFIG, facts(), False),
    ("a stranger", {"sender": "eve@evil.test"}, CONFIG, facts(), True),
    ("no usable From", {"sender": "undisclosed-recipients:;"}, CONFIG, facts(), True),
    ("a subdomain, not allowed", {"sender": "bob@ops.example.com"}, CONFIG, facts(), True),
    ("a subdomain, allowed", {"sender": "bob@ops.example.com"},
     policy(allow_subdomains=True), facts(), False),
    ("a look-alike domain", {"sender": "bob@notexample.com"},
     policy(allow_subdomains=True), facts(), True),
    ("an allowed address", {"sender": "bob@partner.test"},
     policy(allowed_senders=("bob@partner.test",)), facts(), False),
    ("another address of that domain", {"sender": "carol@partner.test"},
     policy(allowed_senders=("bob@partner.test",)), facts(), True),
    ("someone paged for the incident", {"sender": "dana@partner.test"}, CONFIG,
     facts(PAGED), False),
    ("the pager address itself", {"sender": "pager@partner.test"}, CONFIG, facts(PAGED),
     False),
    ("someone paged, writing about another incident", {"sender": "dana@partner.test"},
     CONFIG, facts(incident(n=2)), True),
    ("dkim required, none", {}, policy(require_dkim=True,
                                       trusted_authserv_ids=("mx.example.com",)), facts(),
     True),
    ("dkim required, trusted pass", {"headers": {"Authentication-Results": _AR_PASS}},
     policy(require_dkim=True, trusted_authserv_ids=("mx.example.com",)), facts(), False),
    ("dkim required, pass from an untrusted host",
     {"headers": {"Authentication-Results": _AR_FORGED}},
     policy(require_dkim=True, trusted_authserv_ids=("mx.example.com",)), facts(), True),
    ("direct to the bot, accepted", {"to": "mailbot@example.com"}, CONFIG, facts(), False),
    ("direct to the bot, refused", {"to": "mailbot@example.com"},
     policy(accept_direct_to_bot=False), facts(), True),
    ("to the list, direct refused", {}, policy(accept_direct_to_bot=False), facts(), False),
]


@pytest.mark.parametrize("what,kw,config,fact,ignored", SENDERS, ids=[s[0] for s in SENDERS])
def test_check_sender(what, kw, config, fact, ignored):
    got = check_sender(parsed("Re: [INC-1] x", STATE, **kw), fact, config, None)
    if ignored:
        assert got is not None and got.action == Action.IGNORE
    else:
        assert got is None, got.reason


# ---------------------------------------------------------------- enforce


UPDATE = route(parsed("Re: [INC-1] x", STATE), facts(incident()), CONFIG, None)
LOOKS_LIKE_PM = "## Cause\nA bad config.\n\n## Impact\nCheckout.\n\n## Resolution\nRolled back.\n"

ENFORCED = [
    # (what, subject, body, facts, date, problem, missing, invalid)
    ("all three stated", "Re: [INC-1] x", STATE, facts(incident()), None, None, (), ()),
    ("subject shorthand and a commander", "Re: [INC-1] [SEV1] [mitigating] x",
     "Commander: bob@example.com", facts(incident()), None, None, (), ()),
    ("commander as a role", "Re: [INC-1] x",
     "Severity: SEV2\nPhase: mitigating\nRoles: commander=bob@example.com",
     facts(incident()), None, None, (), ()),
    ("IC as the key", "Re: [INC-1] x", "Severity: SEV2\nPhase: mitigating\nIC: bob",
     facts(incident()), None, None, (), ()),
    ("IC as a role", "Re: [INC-1] x", "Severity: SEV2\nPhase: mitigating\nRoles: ic=bob",
     facts(incident()), None, None, (), ()),
    ("no commander", "Re: [INC-1] x", "Severity: SEV2\nPhase: mitigating",
     facts(incident()), None, Problem.INCOMPLETE_FOLLOW_UP, ("commander",), ()),
    ("nothing but a channel", "Re: [INC-1] x", "Channel: #inc", facts(incident()), None,
     Problem.INCOMPLETE_FOLLOW_UP, ("severity", "phase", "commander"), ()),
    ("a severity not understood is not also missing", "Re: [INC-1] x",
     "Severity: SEV9\nPhase: mitigating\nCommander: bob", facts(incident()), None,
     Problem.INCOMPLETE_FOLLOW_UP, (), ("severity",)),
    ("a hedged phase", "Re: [INC-1] x", "Severity: SEV2\nPhase: resolved?\nCommander: bob",
     facts(incident()), None, Problem.INCOMPLETE_FOLLOW_UP, (), ("phase",)),
    ("written an hour before the resolution", "Re: [INC-1] x", STATE,
     facts(incident("resolved")), "Wed, 25 Nov 2026 09:00:00 +0000",
     Problem.WRITTEN_BEFORE_RESOLUTION, (), ()),
    ("written within the clock slack", "Re: [INC-1] x", STATE, facts(incident("resolved")),
     "Wed, 25 Nov 2026 09:55:00 +0000", None, (), ()),
    ("an old mail that says resolved reopens nothing", "Re: [INC-1] x",
     "Severity: SEV2\nPhase: resolved\nCommander: alice@example.com",
     facts(incident("resolved")), "Wed, 25 Nov 2026 09:00:00 +0000", None, (), ()),
    ("an old mail to an open incident", "Re: [INC-1] x", STATE, facts(incident()),
     "Wed, 25 Nov 2026 09:00:00 +0000", None, (), ()),
]


@pytest.mark.parametrize("what,subject,body,fact,date,problem,missing,invalid", ENFORCED,
                         ids=[e[0] for e in ENFORCED])
def test_enforce(what, subject, body, fact, date, problem, missing, invalid):
    mail = parsed(subject, body, **({"date": date} if date else {}))
    got = enforce(mail, fact, CONFIG, UPDATE)
    if problem is None:
        assert got is None, got.reason
        return
    assert got is not None and got.action == Action.REJECT
    assert got.details["problem"] == problem
    assert (got.missing, tuple(i.field for i in got.invalid)) == (missing, invalid)
    assert got.incident_id == 1


def test_enforce_says_when_an_untagged_reply_looks_like_the_postmortem():
    got = enforce(parsed("Re: [INC-1] x", LOOKS_LIKE_PM), facts(incident("resolved")),
                  CONFIG, UPDATE)
    assert got is not None and got.details.get("looks_like_postmortem") is True
    got = enforce(parsed("Re: [INC-1] x", LOOKS_LIKE_PM), facts(incident()), CONFIG, UPDATE)
    assert got is not None and not got.details.get("looks_like_postmortem")


@pytest.mark.parametrize("action", [a for a in Action if a != Action.UPDATE])
def test_enforce_judges_only_updates(action):
    decision = dataclasses.replace(UPDATE, action=action)
    assert enforce(parsed("Re: [INC-1] x", "Channel: #inc"), facts(incident()), CONFIG,
                   decision) is None


# ---------------------------------------------------------------- the closed sets


def test_stored_values_stay_as_they_were():
    # The message index keeps the action ("outcome"); templates compare problem codes
    # as strings. Renaming a value would change what old records and templates mean.
    assert {a.value for a in Action} == {
        "ignore", "archive", "status", "declare", "update", "comment", "reject",
        "postmortem", "postmortem-accept", "postmortem-reject", "reviewed",
        "review-refused", "done", "done-refused"}
    assert Action.POSTMORTEM_ACCEPT == "postmortem-accept"
    assert f"{Action.DONE_REFUSED}" == "done-refused"


def test_every_final_action_has_one_handler():
    handlers = Planner._handlers
    assert set(handlers) == set(Action) - {Action.POSTMORTEM}
    assert all(callable(h) for h in handlers.values())


def _codes(template: str) -> set[str]:
    text = (REPO / "templates" / "mail" / template).read_text()
    return set(re.findall(r'problem == "([a-z-]+)"', text))


def test_every_problem_is_worded_in_the_rejection():
    # The incomplete follow-up is the template's last branch ({% else %}).
    assert _codes("rejection.txt") == {p.value for p in Problem} - {
        Problem.INCOMPLETE_FOLLOW_UP}


def test_refusal_codes_in_the_templates_are_refusals():
    used = _codes("review_refused.txt") | _codes("done_refused.txt")
    # not-allowed is each template's last branch ({% else %}).
    assert used == {r.value for r in Refusal} - {Refusal.NOT_ALLOWED}


def test_a_postmortem_never_leaves_the_chain_undecided():
    body = ("## Cause\nA config change.\n\n## Impact\nCheckout.\n\n## Resolution\n"
            "Rolled back.\n\n## Prevention\nCI check.\n\n## Action items\n"
            "- Add a CI check - owner: bob@example.com - due: 2026-11-30\n")
    day = dt.date(2026, 11, 25)
    resolved = facts(incident("resolved"), today=day)
    got = decide(parsed("[POSTMORTEM] [INC-1] x", body), resolved, CONFIG)
    assert got.action == Action.POSTMORTEM_ACCEPT, got.reason
    assert got.details["review"].accepted
    got = decide(parsed("[POSTMORTEM] [INC-1] x", "## Cause\nA config change.\n"), resolved,
                 CONFIG)
    assert got.action == Action.POSTMORTEM_REJECT
    assert "prevention" in got.missing


# ---------------------------------------------------------------- incident fields


# One line per field that a message can state, and what it reads as.
SAMPLES = {
    "severity": ("SEV1", "SEV1"),
    "phase": ("mitigating", "mitigating"),
    "commander": ("bob@example.com", "bob@example.com"),
    "roles": ("comms=carol@example.com", {"comms": "carol@example.com"}),
    "channel": ("#inc-1", "#inc-1"),
    "summary": ("Checkout fails", "Checkout fails"),
    "impact": ("Half the orders", "Half the orders"),
    "customer_impact": ("yes", True),
    "services": ("checkout, payments", ("checkout", "payments")),
    "postmortem_owner": ("bob@example.com", "bob@example.com"),
    "page": ("db", ("db",)),
    "started_at": ("09:30", dt.datetime(2026, 11, 25, 9, 30, tzinfo=UTC)),
    "resolved_at": ("09:50", dt.datetime(2026, 11, 25, 9, 50, tzinfo=UTC)),
}


def test_every_field_has_a_sample():
    assert set(SAMPLES) == set(FIELD_KEYS)


@pytest.mark.parametrize("name,key", [(n, k) for n, keys in FIELD_KEYS.items() for k in keys])
def test_each_key_states_its_field(name, key):
    written, expected = SAMPLES[name]
    mail = parsed("Re: [INC-1] x", f"{key.replace('-', ' ').title()}: {written}\n")
    assert getattr(mail.fields, name) == expected
    others = {f.name for f in dc_fields(mail.fields) if f.name in FIELD_KEYS} - {name}
    assert all(getattr(mail.fields, n) in (None, {}) for n in others)


def test_recorded_fields_are_the_incidents_own():
    attributes = {f.name for f in dc_fields(Incident)}
    assert set(RECORDED_FIELDS) <= attributes
    assert {"roles", "page", "resolved_at"}.isdisjoint(RECORDED_FIELDS)
