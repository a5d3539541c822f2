"""`mailbot oncall [SERVICE] [--at TIME] [--json]`, run as the program is (a subprocess)
against the sample configuration: its rotation for api hands over on Mondays at 09:00
Berlin time, with Dana covering Yusuf's turn from 2026-12-28 09:00 to 2027-01-02 09:00."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def oncall(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "mailbot.toml"
    config.write_text((REPO / "config" / "mailbot.toml").read_text()
                      .replace('file = "services.toml"',
                               f'file = "{REPO / "config" / "services.toml"}"'))
    return subprocess.run([sys.executable, "-m", "mailbot", "oncall", *args,
                           "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_text_names_who_is_on_call_and_who_is_next(tmp_path):
    done = oncall(tmp_path, "api", "--at", "2026-11-30 08:59")  # [schedule] zone: UTC
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "On call at 2026-11-30 08:59 UTC:\n"
        "\n"
        "api (rotation, handover in Europe/Berlin)\n"
        "  now:  Dana Whitfield <dana@example.com>, pager 4915550123@sms.example.net\n"
        "  since 2026-11-30 09:00 CET, until 2026-12-07 09:00 CET\n"
        "  next: Yusuf Demir <yusuf@example.com>, from 2026-12-07 09:00 CET\n")


def test_json_with_an_override_and_the_weeks_ahead(tmp_path):
    done = oncall(tmp_path, "API", "--json", "--weeks", "3",
                  "--at", "2026-12-29T10:00:00+01:00")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["at"] == "2026-12-29T09:00:00+00:00"
    [api] = data["services"]
    assert api["on_call"] == [{"name": "Dana Whitfield", "address": "dana@example.com",
                               "pager": "4915550123@sms.example.net"}]
    assert api["override"] is True
    # The override (Dana covering Yusuf's week) is a shift of its own, marked as one,
    # even though it follows Dana's regular week: "since" is when the override began.
    assert (api["since"], api["until"]) == ("2026-12-28T08:00:00+00:00",
                                            "2027-01-02T08:00:00+00:00")
    assert api["next"]["address"] == "yusuf@example.com"
    assert [(s["person"]["address"], s["start"], s["override"]) for s in api["shifts"]] == [
        ("dana@example.com", "2026-12-28T08:00:00+00:00", True),
        ("yusuf@example.com", "2027-01-02T08:00:00+00:00", False),
        ("alice@example.com", "2027-01-04T08:00:00+00:00", False)]


def test_every_service_and_those_without_a_rotation(tmp_path):
    done = oncall(tmp_path, "--json", "--at", "2026-11-29 12:00")
    services = {s["service"]: s for s in json.loads(done.stdout)["services"]}
    assert len(services) == 7
    assert services["db"]["rotation"] is False
    assert [p["address"] for p in services["db"]["on_call"]] == ["grace@example.com"]
    assert services["api"]["on_call"][0]["address"] == "alice@example.com"


def test_unknown_service_and_bad_time_are_one_line_errors(tmp_path):
    done = oncall(tmp_path, "nosuch")
    assert done.returncode == 65 and done.stderr.count("\n") == 1
    assert "no service 'nosuch'" in done.stderr
    done = oncall(tmp_path, "--at", "tomorrow-ish")
    assert done.returncode == 64 and done.stderr.count("\n") == 1
    assert "--at 'tomorrow-ish': not a date and time" in done.stderr
