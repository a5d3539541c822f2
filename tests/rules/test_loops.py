"""The loop rule on single messages (pure: a parsed mail in, a decision out)."""

from __future__ import annotations

import pytest

from mailbot.config import load_config
from mailbot.models import Facts
from mailbot.parsing import Language, parse_mail
from mailbot.rules.loops import check_loops
from tests.support import REPO, message

CONFIG = load_config(REPO / "config" / "mailbot.toml")
LANG = Language.from_config(CONFIG)


def decide(value: str):
    raw = message("Re: [INC-1] x", "Phase: mitigating", message_id="al@x",
                  headers={"Auto-Submitted": value})
    return check_loops(parse_mail(raw, LANG), Facts(), CONFIG, None)


@pytest.mark.parametrize("value", ["no", "No", "no (manual)", "No (sent by a person)",
                                   "no; x=1", " (comment) no"])
def test_auto_submitted_no_is_a_person(value):
    assert decide(value) is None


@pytest.mark.parametrize("value", ["auto-replied", "auto-generated", "auto-notified",
                                   "Auto-Replied (vacation)", "auto-replied; owner=x"])
def test_auto_submitted_anything_else_is_ignored(value):
    got = decide(value)
    assert got is not None and got.action == "ignore"


@pytest.mark.parametrize("subject", ["Automatic reply: [INC-2] ok", "Out of Office: [INC-2] x",
                                     "Automatische Antwort: [INC-2] x", "AUTOSVAR: [INC-2] x"])
def test_out_of_office_subjects_are_ignored(subject):
    raw = message(subject, "I am away until Monday.", message_id="oo@x",
                  headers={"X-Auto-Response-Suppress": "All"})
    got = check_loops(parse_mail(raw, LANG), Facts(), CONFIG, None)
    assert got is not None and got.action == "ignore"


def test_a_person_writing_about_an_automatic_reply_is_not_ignored():
    raw = message("Re: [INC-2] the automatic reply: failed", "Phase: mitigating",
                  message_id="oo2@x")
    assert check_loops(parse_mail(raw, LANG), Facts(), CONFIG, None) is None
