"""Property tests: how fields are written never changes what is read; no input raises."""

from __future__ import annotations

import html

from hypothesis import HealthCheck, given, settings, strategies as st

from mailbot.models import ParsedMail
from mailbot.parsing import parse_mail
from tests.support.parsing_corpus import LANG, erp_files, html_replies, standard_replies, wrap

SEVERITY_SPELLINGS = {
    "SEV1": ["SEV1", "sev 1", "Sev-1", "S1", "1", "sev1 (critical)"],
    "SEV2": ["SEV2", "sev 2", "Sev-2", "s2", "2"],
    "SEV3": ["SEV3", "sev3", "SEV-3", "S3"],
    "SEV4": ["SEV4", "Sev 4", "4"],
}
PEOPLE = ["alice@example.com", "Bob Jones <bob@example.com>", "Carol", "dave@example.org"]
KEYS = {
    "severity": ["Severity", "Sev"],
    "phase": ["Phase", "Status", "Stage"],
    "commander": ["Commander", "IC", "Incident-Commander", "Incident Commander"],
    "channel": ["Channel", "Where", "Bridge"],
}
WORDS = ["the", "deploy", "rolled", "back", "we", "are", "watching", "errors", "thanks",
         "database", "latency", "is", "down", "again", "customers", "see", "timeouts", "ok"]

prose = st.lists(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join),
    min_size=0, max_size=3,
).map(lambda lines: "\n".join(lines))


@st.composite
def key_case(draw, key: str) -> str:
    style = draw(st.sampled_from(["as", "upper", "lower", "mixed"]))
    if style == "upper":
        return key.upper()
    if style == "lower":
        return key.lower()
    if style == "mixed":
        flips = draw(st.lists(st.booleans(), min_size=len(key), max_size=len(key)))
        return "".join(c.upper() if f else c.lower() for c, f in zip(key, flips, strict=False))
    return key


@st.composite
def field_line(draw, field: str, value: str) -> str:
    key = draw(key_case(draw(st.sampled_from(KEYS[field]))))
    deco = draw(st.sampled_from(["", "- ", "* ", "• ", "*k:* ", "**k**: ", "**k:** ", "__k__: "]))
    before = draw(st.sampled_from(["", " "]))
    after = draw(st.sampled_from(["", " ", "   ", "\t"]))
    indent = draw(st.sampled_from(["", " ", "  "]))
    if "k" in deco:
        mark = deco.split("k")[0]
        closing = deco.split("k")[1]
        return f"{indent}{mark}{key}{closing.replace(':', before + ':')}{after}{value}"
    return f"{indent}{deco}{key}{before}:{after or ' '}{value}"


@st.composite
def declaration(draw):
    chosen = {
        "severity": draw(st.sampled_from(sorted(SEVERITY_SPELLINGS))),
        "phase": draw(st.sampled_from(LANG.phases)),
        "commander": draw(st.sampled_from(PEOPLE)),
        "channel": draw(st.sampled_from(["#inc-1", "https://meet.example.com/abc", "bridge 42"])),
    }
    spelled = {
        "severity": draw(st.sampled_from(SEVERITY_SPELLINGS[chosen["severity"]])),
        "phase": draw(st.sampled_from([chosen["phase"], chosen["phase"].upper(),
                                       chosen["phase"].title()])),
        "commander": chosen["commander"],
        "channel": chosen["channel"],
    }
    order = draw(st.permutations(sorted(chosen)))
    lines = [draw(field_line(f, spelled[f])) for f in order]
    return chosen, lines, draw(prose), draw(prose)


def compose(lines: list[str], head: str, tail: str) -> str:
    parts = [p for p in (head, "\n".join(lines), tail) if p]
    return "\n\n".join(parts) + "\n"


def check(parsed: ParsedMail, chosen: dict[str, str]) -> None:
    f = parsed.fields
    got = {"severity": f.severity, "phase": f.phase, "commander": f.commander,
           "channel": f.channel}
    assert got == chosen
    assert f.invalid == ()
    assert all(line.where == "new" for line in f.lines)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declaration())
def test_writing_style_does_not_change_fields_plain(case):
    chosen, lines, head, tail = case
    parsed = parse_mail(wrap(compose(lines, head, tail).encode()), LANG)
    check(parsed, chosen)
    # the prose around the fields is the narrative
    assert parsed.narrative.split() == (head + " " + tail).split()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declaration(), st.sampled_from(["div", "p", "br", "li"]), st.booleans())
def test_writing_style_does_not_change_fields_html(case, container, bold):
    chosen, lines, head, tail = case

    def render(line: str) -> str:
        text = html.escape(line)
        if bold and ":" in text:
            key, value = text.split(":", 1)
            text = f"<b>{key}:</b>{value}"
        if container == "br":
            return text + "<br>"
        return f"<{container}>{text}</{container}>"

    body = "".join(render(line) for line in lines)
    if container == "li":
        body = f"<ul>{body}</ul>"
    markup = f"<html><body><p>{html.escape(head)}</p>{body}<p>{html.escape(tail)}</p></body></html>"
    parsed = parse_mail(wrap(markup.encode(), "text/html"), LANG)
    check(parsed, chosen)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(raw):
    parsed = parse_mail(raw, LANG)
    assert isinstance(parsed, ParsedMail)
    assert parsed.key and parsed.size == len(raw)
    assert "\n" not in parsed.subject and "\r" not in parsed.subject
    assert not any(d.startswith("parser error") for d in parsed.defects), parsed.defects


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000), st.sampled_from(["text/plain", "text/html"]))
def test_arbitrary_text_bodies_never_raise(text, ctype):
    parsed = parse_mail(wrap(text.encode("utf-8", "surrogatepass"), ctype), LANG)
    assert isinstance(parsed, ParsedMail)
    # the last-resort guard in parse_mail was not needed: no stage raised
    assert not any(d.startswith("parser error") for d in parsed.defects), parsed.defects


CORPUS_MESSAGES = (
    [p.read_bytes() for p in standard_replies()]
    + [wrap(p.read_bytes(), "text/html") for p in html_replies()]
    + [wrap(p.read_bytes()) for p in erp_files() if p.stat().st_size < 100_000]
)

mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "duplicate"]),
    st.floats(min_value=0, max_value=1), st.integers(min_value=1, max_value=200),
    st.binary(min_size=1, max_size=40),
)


def mutate(raw: bytes, ops) -> bytes:
    data = bytearray(raw)
    for op, where, length, payload in ops:
        at = int(where * len(data)) if data else 0
        if op == "flip" and data:
            data[min(at, len(data) - 1)] ^= payload[0] or 0x80
        elif op == "insert":
            data[at:at] = payload
        elif op == "delete":
            del data[at:at + length]
        elif op == "duplicate":
            data[at:at] = data[at:at + length]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CORPUS_MESSAGES), st.lists(mutation, min_size=1, max_size=6))
def test_mutated_corpus_never_raises(raw, ops):
    mutated = mutate(raw, ops)
    parsed = parse_mail(mutated, LANG)
    assert isinstance(parsed, ParsedMail)
    assert parsed.size == len(mutated)
    assert not any(d.startswith("parser error") for d in parsed.defects), parsed.defects
