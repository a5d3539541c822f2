"""Inputs that make naive parsers take exponential or quadratic time finish, and parse right.

Each case runs in a child process with a generous timeout (10 s). This is not a speed
assertion: a regex that backtracks or a parser that rescans its input would take minutes
to hours on these, so the timeout only catches a blow-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.parsing_corpus import ERP

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 10

# Each case: a Python expression building the raw bytes, and what the parse must show.
HEAD = "b'From: a@example.com\\nSubject: x\\nContent-Type: text/{}\\n\\n'"
CASES = {
    "pathological": (
        f"{HEAD.format('plain')} + open({str(ERP / 'pathological.txt')!r}, 'rb').read()",
        {"new_text_startswith": "I think you're onto something."},
    ),
    "one_megabyte_single_line": (
        f"{HEAD.format('plain')} + b'Severity: SEV2 ' + b'x' * 1_000_000",
        {"new_text_len_min": 256 * 1024},  # all of the analysed part (mime.MAX_TEXT)
    ),
    "one_megabyte_single_line_of_quote_marks": (
        f"{HEAD.format('plain')} + b'Phase: resolved\\n' + b'>' * 1_000_000",
        {"phase": "resolved"},
    ),
    "one_megabyte_of_wrote_and_colons": (
        f"{HEAD.format('plain')} + b'Phase: resolved\\n\\n' + b'On 12:00 a@b wrote ' * 60_000"
        " + b'wrote:'",
        {"phase": "resolved"},
    ),
    "html_unclosed_angle_brackets": (
        f"{HEAD.format('html')} + b'<p>Phase: identified</p>' + b'x<y <a ' * 150_000",
        {"phase": "identified"},
    ),
    "html_many_inline_tags_on_one_line": (
        f"{HEAD.format('html')} + b'<div>Phase: identified</div>' + b'<b>x</b>' * 150_000",
        {"phase": "identified"},
    ),
    "html_unclosed_tags_then_stray_end_tags": (
        f"{HEAD.format('html')} + b'<p>Phase: identified</p>' + b'<b>' * 100_000"
        " + b'</i>' * 100_000",
        {"phase": "identified"},
    ),
    "subject_of_many_encoded_words": (
        "b'Subject: [INC-7] ' + b'=?utf-8?q?a?= ' * 100_000 + b'\\n\\nPhase: monitoring\\n'",
        {"phase": "monitoring", "incident_id": 7},
    ),
    "format_flowed_paragraph_of_two_megabytes": (
        "b'Content-Type: text/plain; format=flowed\\n\\nPhase: mitigating\\n\\n' + b'a ' * 1_000_000",
        {"phase": "mitigating"},
    ),
}

CHILD = """
import json, sys
from mailbot.parsing import Language, parse_mail
raw = {expr}
p = parse_mail(raw, Language())
print(json.dumps({{"phase": p.fields.phase, "severity": p.fields.severity,
                  "incident_id": p.tags.incident_id, "new_text_len": len(p.new_text),
                  "new_text_start": p.new_text[:80]}}))
"""


@pytest.mark.parametrize("name", sorted(CASES))
def test_parses_in_bounded_time(name):
    expr, expected = CASES[name]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(expr=expr)], capture_output=True, text=True,
        timeout=TIMEOUT, cwd=REPO, env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    if "new_text_startswith" in expected:
        assert got["new_text_start"].startswith(expected["new_text_startswith"])
    if "new_text_len_min" in expected:
        assert got["new_text_len"] >= expected["new_text_len_min"]
    for key in ("phase", "severity", "incident_id"):
        if key in expected:
            assert got[key] == expected[key]
