"""Rotation arithmetic: handovers at a local wall time across DST changes, overrides, and
the validation of [services.NAME.rotation] by check-config (one line per problem)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mailbot.config import ConfigError
from mailbot.services import load_services

UTC = dt.timezone.utc

SERVICES = """
[services.db]
description = "Primary database"

[[services.db.experts]]
name = "Grace Liu"
address = "grace@example.com"
role = "on-call"
pager = "4915550001@sms.example.net"

[[services.db.experts]]
name = "Ben Adeyemi"
address = "ben@example.com"
role = "on-call"

[[services.db.experts]]
name = "Dana Whitfield"
address = "dana@example.com"
role = "on-call"

[[services.db.experts]]
name = "Olga Owner"
address = "olga@example.com"
role = "owner"

[services.db.rotation]
members = ["grace@example.com", "ben@example.com", "dana@example.com"]
handover_day = "sunday"
handover_time = "09:00"
timezone = "Europe/Berlin"
start = "2026-03-22"
{extra}
"""


def directory(tmp_path: Path, extra: str = ""):
    path = tmp_path / "services.toml"
    path.write_text(SERVICES.replace("{extra}", extra))
    return load_services(path)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_handover_on_the_last_sunday_of_march_is_at_nine_summer_time(tmp_path):
    # 2026-03-29: clocks go from 02:00 CET to 03:00 CEST; 09:00 CEST is 07:00 UTC.
    d = directory(tmp_path)
    assert d.on_call("db", utc(2026, 3, 29, 6, 59)).now.person == "grace@example.com"
    assert d.on_call("db", utc(2026, 3, 29, 7, 0)).now.person == "ben@example.com"
    shift = d.on_call("db", utc(2026, 3, 25, 12, 0)).now
    # The week that spans the change is one hour short: 09:00 CET to 09:00 CEST.
    assert shift.start == utc(2026, 3, 22, 8, 0)
    assert shift.end == utc(2026, 3, 29, 7, 0)
    assert shift.end - shift.start == dt.timedelta(hours=167)


def test_handover_on_the_last_sunday_of_october_is_at_nine_winter_time(tmp_path):
    # 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET; 09:00 CET is 08:00 UTC.
    d = directory(tmp_path)
    before = d.on_call("db", utc(2026, 10, 25, 7, 59))
    after = d.on_call("db", utc(2026, 10, 25, 8, 0))
    assert before.now.person != after.now.person
    assert before.now.end == utc(2026, 10, 25, 8, 0) == after.now.start
    assert before.now.end - before.now.start == dt.timedelta(hours=169)
    assert before.next.person == after.now.person
    # 31 weeks after start: turn 30 (grace) hands over to turn 31, members[31 % 3] = ben.
    assert before.now.person == "grace@example.com"
    assert after.now.person == "ben@example.com"
    # Shown in local time the handover is 09:00 both before and after the change.
    tz = d.get("db").rotation.tz
    assert after.now.start.astimezone(tz).time() == dt.time(9, 0)
    assert after.now.end.astimezone(tz).time() == dt.time(9, 0)


def test_turns_continue_before_the_start_date(tmp_path):
    d = directory(tmp_path)
    assert d.on_call("db", utc(2026, 3, 22, 7, 59)).now.person == "dana@example.com"


def test_override_takes_over_and_hands_back(tmp_path):
    extra = """
[[services.db.rotation.overrides]]
person = "olga@example.com"
from = "2026-10-27 18:00"
until = "2026-10-29"
"""
    d = directory(tmp_path, extra)
    # ben's week (from 2026-10-25 09:00 CET) is interrupted by olga.
    at = utc(2026, 10, 26, 12, 0)
    oc = d.on_call("db", at)
    assert oc.now.person == "ben@example.com"
    assert oc.now.end == utc(2026, 10, 27, 17, 0)  # 18:00 CET
    assert oc.next.person == "olga@example.com" and oc.next.override
    assert oc.next.end == utc(2026, 10, 28, 23, 0)  # midnight CET
    back = d.on_call("db", utc(2026, 10, 29, 0, 0))
    assert back.now.person == "ben@example.com" and not back.now.override
    assert back.now.end == utc(2026, 11, 1, 8, 0)
    # An override is who gets paged and who the ack calls on call.
    assert [e.address for e in d.on_call_people("db", utc(2026, 10, 28))] == [
        "olga@example.com"]
    roles = {c.address: c.duties[0].role
             for c in d.contacts_for(["db"], at=utc(2026, 10, 28))}
    assert roles["olga@example.com"] == "on-call"
    assert roles["ben@example.com"] == "rotation"


def test_shifts_ahead_cover_weeks_without_gaps(tmp_path):
    d = directory(tmp_path)
    shifts = d.get("db").rotation.shifts(utc(2026, 3, 20), 6)
    assert [s.person.split("@")[0] for s in shifts] == [
        "dana", "grace", "ben", "dana", "grace", "ben"]
    for a, b in zip(shifts, shifts[1:], strict=False):
        assert a.end == b.start


def test_pager_is_where_a_page_goes(tmp_path):
    d = directory(tmp_path)
    assert d.expert_by_address("grace@example.com").page_address == "4915550001@sms.example.net"
    assert d.expert_by_address("ben@example.com").page_address == "ben@example.com"
    assert "4915550001@sms.example.net" in d.addresses()




@pytest.mark.parametrize("change, message", [
    (('start = "2026-03-22"', 'start = "2026-03-23"'),
     "[services.db] rotation start: 2026-03-23 is a monday, not the handover_day (sunday)"),
    (('timezone = "Europe/Berlin"', 'timezone = "Europe/Berlim"'),
     "[services.db] rotation timezone: 'Europe/Berlim' is not a known time zone"),
    (('handover_time = "09:00"', 'handover_time = "9am"'),
     "[services.db] rotation handover_time: '9am' is not a time of day (HH:MM)"),
    (('"dana@example.com"]', '"zed@example.com"]'),
     "[services.db] rotation members: 'zed@example.com' is not an expert of this service"),
    (('handover_day = "sunday"', 'handover_day = "sundy"'),
     "[services.db] rotation handover_day: 'sundy' is not a weekday"),
    (('pager = "4915550001@sms.example.net"', 'pager = "0151 555"'),
     "[services.db] expert 1 pager: '0151 555' is not an email address"),
    (('start = "2026-03-22"', 'start = "2026-03-22"\nshift = 3'),
     "unknown key 'shift' in [services.db] rotation"),
])
def test_check_config_says_what_is_wrong_in_one_line(tmp_path, change, message):
    path = tmp_path / "services.toml"
    text = SERVICES.replace("{extra}", "")
    assert change[0] in text
    path.write_text(text.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_services(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_override_person_must_be_an_expert(tmp_path):
    extra = """
[[services.db.rotation.overrides]]
person = "mallory@example.org"
from = "2026-10-27"
until = "2026-10-28"
"""
    with pytest.raises(ConfigError, match="override 1 person: 'mallory@example.org'"):
        directory(tmp_path, extra)
