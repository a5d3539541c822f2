"""Subject tags: anywhere, any case, after any Re:/Fwd: prefixes, inside encoded words."""

from __future__ import annotations

import pytest

from mailbot.parsing import Language, parse_mail
from mailbot.parsing.tags import read_tags
from tests.support.parsing_corpus import LANG


def tags_of(subject: str):
    raw = (b"From: a@example.com\nSubject: " + subject.encode("utf-8") +
           b"\nContent-Type: text/plain\n\nhi\n")
    return parse_mail(raw, LANG)


@pytest.mark.parametrize("subject", ["[DECLARE] db down", "[declare] db down",
                                     "[Incident] db down", "db down [DECLARE]"])
def test_declare(subject):
    t = read_tags(subject, LANG)
    assert t.declare and t.title == "db down"


@pytest.mark.parametrize("subject", ["[INC-42] x", "[inc 42] x", "[INC42] x", "[Inc-42] x",
                                     "x [INC #42]", "Re: [INC-42] x"])
def test_incident_number(subject):
    t = read_tags(subject, LANG)
    assert t.incident_id == 42 and t.title == "x"


def test_configured_prefix():
    lang = Language(prefix="ops")
    assert read_tags("[OPS-7] [INC-8] y", lang).incident_id == 7
    assert read_tags("[OPS-7] [INC-8] y", lang).unknown == ("INC-8",)


@pytest.mark.parametrize("subject,severity,phase", [
    ("[SEV1] x", "SEV1", None), ("[sev 2] x", "SEV2", None), ("[MITIGATING] x", None, "mitigating"),
    ("[resolved] [s3] x", "SEV3", "resolved"), ("[1] x", None, None),
])
def test_shorthand(subject, severity, phase):
    t = read_tags(subject, LANG)
    assert (t.severity, t.phase) == (severity, phase)


def test_postmortem_and_status():
    t = read_tags("[POSTMORTEM] [INC-3] write-up", LANG)
    assert t.postmortem and t.incident_id == 3 and t.title == "write-up"
    t = read_tags("[status]", LANG)
    assert t.status and t.incident_id is None and t.title == ""


def test_nested_prefixes_and_unknown_brackets():
    t = read_tags("Re: AW: Fwd: SV: FW: Antw: WG: RE: [Incidents] [INC-9] [sev1] Re: api slow", LANG)
    assert t.incident_id == 9 and t.severity == "SEV1"
    assert t.unknown == ("Incidents",)
    assert t.title == "[Incidents] Re: api slow"
    t = read_tags("Re[2]: Fwd:  [inc-9]   Re: api slow", LANG)
    assert t.incident_id == 9 and t.title == "api slow"


def test_rfc2047_base64_subject():
    # "Re: [DECLARE] [SEV2] Zahlung fällt aus" as UTF-8 base64
    import base64
    word = base64.b64encode("Re: [DECLARE] [SEV2] Zahlung fällt aus".encode()).decode()
    p = tags_of(f"=?UTF-8?B?{word}?=")
    assert p.subject == "Re: [DECLARE] [SEV2] Zahlung fällt aus"
    assert p.tags.declare and p.tags.severity == "SEV2" and p.tags.title == "Zahlung fällt aus"


def test_rfc2047_q_subject_split_over_words():
    p = tags_of("AW: =?iso-8859-1?q?=5BINC-12=5D_Caf=E9?=\n =?iso-8859-1?q?_down_=5Bmitigating=5D?=")
    assert p.subject == "AW: [INC-12] Café down [mitigating]"
    assert p.tags.incident_id == 12 and p.tags.phase == "mitigating"
    assert p.tags.title == "Café down"


def test_subject_loses_control_characters():
    p = tags_of("=?utf-8?q?[INC-1]_a=0D=0ABcc:_evil@example.com=00?=")
    assert "\r" not in p.subject and "\n" not in p.subject and "\x00" not in p.subject
    assert p.tags.incident_id == 1 and "\n" not in p.tags.title


def test_plain_chatter_has_no_tags():
    t = read_tags("Lunch?", LANG)
    assert (t.declare, t.incident_id, t.severity, t.phase, t.postmortem, t.status) == (
        False, None, None, None, False, False)
    assert t.title == "Lunch?"
