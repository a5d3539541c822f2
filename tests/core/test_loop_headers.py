"""The loop rule on single messages (pure: a parsed mail in, a decision out)."""

from __future__ import annotations

import pytest

from mailbot.config import load_config
from mailbot.parsing import Language, parse_mail
from mailbot.rules import Facts
from mailbot.rules.loops import check_loops
from tests.core.support import REPO, message

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
