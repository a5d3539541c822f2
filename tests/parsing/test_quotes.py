"""Quote and signature detection beyond the corpus: other languages and client styles."""

from __future__ import annotations

import pytest

from mailbot.config import load_config
from mailbot.parsing import Language, parse_mail
from mailbot.parsing.quotes import split_reply
from tests.support.parsing_corpus import wrap

NEW = "Phase: mitigating"


@pytest.mark.parametrize("header", [
    "On Mon, Apr 2, 2012 at 6:26 PM, Bob <bob@example.com> wrote:",
    "Am 02.04.2012 um 18:26 schrieb Bob <bob@example.com>:",
    "Le 2 avr. 2012 à 18:26, Bob <bob@example.com> a écrit :",
    "El 2 abr 2012, a las 18:26, Bob <bob@example.com> escribió:",
    "Il giorno 2 apr 2012, alle ore 18:26, Bob <bob@example.com> ha scritto:",
    "Op 2 apr. 2012 om 18:26 heeft Bob <bob@example.com> het volgende geschreven:",
    "Bob <bob@example.com> wrote:",
    "2 апр. 2012 г., в 18:26, Bob <bob@example.com> написал(а):",
    "On Mon, Apr 2, 2012 at 6:26 PM,\nBob Jones <bob@example.com>\nwrote:",
    "bob@example.com wrote:",
])
def test_attribution_headers(header):
    split = split_reply(f"{NEW}\n\n{header}\n\n> Phase: investigating\n> old text\n")
    assert split.new_text == NEW
    assert "investigating" in split.quoted_text


@pytest.mark.parametrize("separator", [
    "-----Original Message-----", "----- Original Message -----",
    "-------- Ursprüngliche Nachricht --------", "---------- Forwarded message ---------",
    "Begin forwarded message:",
    "________________________________\nFrom: Bob\nSent: Monday\nTo: Incidents",
    "Von: Bob <bob@example.com>\nGesendet: Montag, 2. April 2012 18:26\nAn: Incidents\nBetreff: x",
    "*From:* Bob\n*Sent:* Monday\n*Subject:* x",
])
def test_unmarked_quotes_run_to_the_end(separator):
    split = split_reply(f"{NEW}\n\n{separator}\n\nPhase: investigating\nold text\n")
    assert split.new_text == NEW
    assert "investigating" in split.quoted_text


@pytest.mark.parametrize("signature", [
    "-- \nAlice", "--\nAlice", "Sent from my iPhone", "Sent from my Samsung Galaxy",
    "Sent with Sparrow (http://www.sparrowmailapp.com/?sig)", "Get Outlook for iOS",
    "Sent from my BlackBerry® wireless device", "Sent via BlackBerry from T-Mobile",
])
def test_signatures(signature):
    split = split_reply(f"{NEW}\n\n{signature}\n")
    assert split.new_text == NEW
    assert split.signature.replace("--\n", "-- \n").strip() in signature.replace("--\n", "-- \n")


def test_prose_that_looks_like_markers_is_kept():
    text = ("On call this week: me.\nTo be safe: restart it.\n"
            "We deployed 1.2 at 10:00 and it wrote:\n"
            "Sent from the staging box, the logs are attached, see below.\n")
    assert split_reply(text).new_text == text.strip()


def test_language_from_config(tmp_path):
    path = tmp_path / "mailbot.toml"
    # phases is a top-level key: it must come before the tables
    path.write_text(
        'phases = ["open", "fixing", "resolved"]\n[list]\nincident_prefix = "ops"\n'
        '[[severity]]\nname = "P1"\n[[severity]]\nname = "P2"\n', encoding="utf-8")
    lang = Language.from_config(load_config(path))
    assert (lang.prefix, lang.severities, lang.phases) == ("OPS", ("P1", "P2"),
                                                          ("open", "fixing", "resolved"))
    p = parse_mail(wrap(b"Severity: p2\nPhase: Fixing\n", subject="[ops-3] [P1] x"), lang)
    assert (p.tags.incident_id, p.tags.severity) == (3, "P1")
    assert (p.fields.severity, p.fields.phase) == ("P2", "fixing")


def test_bare_attribution_above_quoted_lines_is_quoted():
    from mailbot.parsing.quotes import split_reply

    split = split_reply("Rolled back.\n\nOn Wed, Alice wrote:\n> Phase: investigating\n")
    assert split.new_text.strip() == "Rolled back."
    # Without quoted lines under it, the same words are the author's own prose.
    prose = split_reply("Rolled back.\nOn Wed, Alice wrote:\nthat it was fixed.\n")
    assert "Alice wrote:" in prose.new_text
