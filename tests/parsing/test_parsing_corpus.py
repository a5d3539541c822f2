"""The real-world reply corpus: new text, quotes and signatures are told apart.

tests/support/corpus.py says where each part comes from, what it holds and what it expects.
"""

from __future__ import annotations

import email
from pathlib import Path

import pytest

from mailbot.parsing import parse_mail
from mailbot.parsing.mime import MAX_TEXT
from tests.support.parsing_corpus import (
    ERP, LANG, TALON, erp_files, html_replies, squash, standard_replies, wrap,
)


def test_corpus_is_present():
    assert len(standard_replies()) == 12
    assert len(html_replies()) == 9
    assert len(erp_files()) == 22


# ---------------------------------------------------------------- talon standard replies


@pytest.mark.parametrize("path", standard_replies(), ids=lambda p: p.stem)
def test_standard_reply_new_text(path: Path):
    parsed = parse_mail(path.read_bytes(), LANG)
    # Our new text leaves the signature out; the corpus' expected reply texts keep it
    # (talon only removes quotations), so compare new text + signature to them.
    assert parsed.new_text == "Hello"
    expected_file = path.with_name(path.stem + "_reply_text")
    if expected_file.exists():
        assert parsed.signature, "a signature was expected"
        assert squash(parsed.new_text + parsed.signature) == squash(expected_file.read_text())
    assert "Hi" not in parsed.new_text
    assert parsed.quoted_text, "the quote was found"


@pytest.mark.parametrize(
    "path", [p for p in standard_replies() if b"text/html" in p.read_bytes()],
    ids=lambda p: p.stem,
)
def test_standard_reply_html_twin_alone(path: Path):
    """The HTML alternative, sent as HTML-only mail, gives the same new text."""
    msg = email.message_from_bytes(path.read_bytes())
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    parsed = parse_mail(wrap(html.get_payload(decode=True), "text/html"), LANG)
    # outlook.eml's two alternatives really differ: its HTML says something else.
    expected = "Allo! Follow up MIME!" if path.stem == "outlook" else "Hello"
    assert parsed.new_text == expected


# ---------------------------------------------------------------- talon html replies


@pytest.mark.parametrize("path", html_replies(), ids=lambda p: p.stem)
def test_html_reply_new_text(path: Path):
    parsed = parse_mail(wrap(path.read_bytes(), "text/html"), LANG)
    assert squash(parsed.new_text) == squash("Hi. I am fine.\n\nThanks,\nAlex")
    assert "How are you?" in parsed.quoted_text


def test_reply_quotations_share_block():
    parsed = parse_mail((TALON / "reply-quotations-share-block.eml").read_bytes(), LANG)
    assert squash(parsed.new_text) == squash(
        "Hi Katharine.\u00a0 Sounds great.\u00a0 Are there and dietry restrictions or things "
        "your husband does/doesn't like to eat?\u00a0 Would you like to do a few hors d "
        "oeuvres and then a\u00a03 or 4\u00a0course dinner?\u00a0 Let me know what you think "
        "will work best and I will start working on a menu and proposal.\u00a0 Thanks so much "
        "and look forward to hearing from you soon.\n\u00a0\nJoe XXX"
    )
    assert "New Booking Inquiry" in parsed.quoted_text


# ---------------------------------------------------------------- email_reply_parser bodies

ERP_EXPECTED = {
    "correct_sig": "this is an email with a correct -- signature.",
    "email_1_1": (
        "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after\n"
        "running a test?\nI am currently using the Java HTTP API.\n\n-Abhishek Kona"
    ),
    "email_1_2": (
        "Hi,\n\n"
        "You can list the keys for the bucket and call delete for each. Or if you\n"
        "put the keys (and kept track of them in your test) you can delete them\n"
        "one at a time (without incurring the cost of calling list first.)\n\n"
        "Something like:\n\n"
        '        String bucket = "my_bucket";\n'
        "        BucketResponse bucketResponse = riakClient.listBucket(bucket);\n"
        "        RiakBucketInfo bucketInfo = bucketResponse.getBucketInfo();\n\n"
        "        for(String key : bucketInfo.getKeys()) {\n"
        "            riakClient.delete(bucket, key);\n"
        "        }\n\n"
        "would do it.\n\n"
        "See also\n\n"
        "http://wiki.basho.com/REST-API.html#Bucket-operations\n\n"
        "which says\n\n"
        '"At the moment there is no straightforward way to delete an entire\n'
        "Bucket. There is, however, an open ticket for the feature. To delete all\n"
        "the keys in a bucket, you\u2019ll need to delete them all individually.\""
    ),
    "email_1_3": "Oh thanks.\n\nHaving the function would be great.\n\n-Abhishek Kona",
    "email_1_4": "Awesome! I haven't had another problem with it.",
    "email_1_5": (
        "One: Here's what I've got.\n\n"
        "- This would be the first bullet point that wraps to the second line\nto the next\n"
        "- This is the second bullet point and it doesn't wrap\n"
        "- This is the third bullet point and I'm having trouble coming up with enough\n"
        "to say\n- This is the fourth bullet point\n\n"
        "Two:\n- Here is another bullet point\n- And another one\n\n"
        "This is a paragraph that talks about a bunch of stuff. It goes on and on\n"
        "for a while."
    ),
    "email_1_6": "I get proper rendering as well.",
    "email_1_7": ":+1:",
    # inline reply: every unquoted fragment is kept, one blank line apart
    "email_1_8": "I will reply under this one\n\nand under this.",
    "email_2_1": "Outlook with a reply",
    "email_2_2": "Outlook with a reply directly above line",
    "email_2_3": "Outlook with a reply directly above line",
    "email_BlackBerry": "Here is another email",
    "email_bullets": (
        "test 2 this should list second\n\nand have spaces\n\nand retain this formatting\n\n"
        "   - how about bullets\n   - and another"
    ),
    "email_iPhone": "Here is another email",
    # the two long lines: the first is all '>' (a quote), the second starts with 'A' (text)
    "email_long_quote": (
        "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after\n"
        "running a test?\n\nasdf\nA" + ">" * 707605 + "\nI am currently using the Java HTTP API."
        "\n\n-Abhishek Kona"
    ),
    "email_multi_word_sent_from_my_mobile_device": "Here is another email",
    "email_one_is_not_on": (
        "Thank, this is really helpful.\n\nOne outstanding question I had:\n\n"
        "Locally (on development), when I run..."
    ),
    "email_sent_from_my_not_signature": (
        "Here is another email\n\nSent from my desk, is much easier then my mobile phone."
    ),
    "email_sig_delimiter_in_middle_of_line": (
        "Hi there!\n\nStuff happened.\n\nAnd here is a fix -- this is not a signature.\n\nkthxbai"
    ),
    "greedy_on": (
        "On your remote host you can run:\n\n     telnet 127.0.0.1 52698\n\n"
        "This should connect to TextMate (on your Mac, via the tunnel). If that\n"
        "fails, the tunnel is not working."
    ),
    "pathological": (
        "I think you're onto something. I will try to fix the problem as soon as I\n"
        "get back to a computer."
    ),
}

ERP_SIGNATURES = {
    "correct_sig": "--\nrick",
    "email_1_1": "riak-users mailing list",
    "email_1_2": "riak-users mailing list",
    "email_1_3": "riak-users mailing list",
    "email_long_quote": "riak-users mailing list",
    "email_1_6": "Sent from a magnificent torch of pixels",
    "email_1_8": "Hey there, this is my signature",
    "email_BlackBerry": "Sent from my BlackBerry",
    "email_iPhone": "Sent from my iPhone",
    "email_multi_word_sent_from_my_mobile_device": "Sent from my Verizon Wireless BlackBerry",
    "email_bullets": "Joe Smith",
}


def test_every_erp_file_has_an_expectation():
    assert {p.stem for p in erp_files()} == set(ERP_EXPECTED)


@pytest.mark.parametrize("path", erp_files(), ids=lambda p: p.stem)
def test_erp_body_new_text(path: Path):
    parsed = parse_mail(wrap(path.read_bytes()), LANG)
    if len(path.read_bytes()) > MAX_TEXT:
        # Analysis reads the start of the text (fields live there): a body over the cap
        # gives the start of its new text, and says that only the start was read.
        assert ERP_EXPECTED[path.stem].startswith(parsed.new_text)
        assert len(parsed.new_text) > MAX_TEXT // 2
        assert any("only the start was read" in d for d in parsed.defects)
        return
    assert parsed.new_text == ERP_EXPECTED[path.stem]
    if path.stem in ERP_SIGNATURES:
        assert ERP_SIGNATURES[path.stem] in parsed.signature
    else:
        assert parsed.signature == ""


def test_erp_signature_is_not_new_text():
    parsed = parse_mail(wrap((ERP / "email_1_8.txt").read_bytes()), LANG)
    assert "signature" not in parsed.new_text
    assert "okay?" in parsed.quoted_text
