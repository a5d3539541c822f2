"""One incident-timing policy: the board, the digest and the reminders agree on what is
stale, and how severities rank (mailbot/timing.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from mailbot.digest import build_digest
from mailbot.formatting import format_duration
from mailbot.publish import publish_site
from mailbot.reminders import stale_due
from mailbot.services import load_services
from mailbot.timing import is_stale, severity_rank, stale_after

from tests.support.dom import parse
from tests.support.factory import NOW, ago, make_config, make_incident


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path / "etc")


# SEV1 30m, SEV2 60m, SEV3 240m, SEV4 1440m (config/mailbot.toml's defaults).
CASES = [
    # (severity, minutes since the last accepted update, stale?)
    ("SEV2", 59, False),
    ("SEV2", 60, True),      # the instant the reminder falls due: stale everywhere
    ("SEV4", 1439, False),
    ("SEV4", 1440, True),
    (None, 29, False),
    (None, 30, True),        # no severity: chased at the strictest cadence (SEV1's)
    ("SEV9", 30, True),      # a level that is not configured: likewise
]


@pytest.mark.parametrize("severity,minutes,stale", CASES)
def test_board_digest_and_reminders_agree_on_stale(tmp_path, config, severity, minutes, stale):
    incident = make_incident(1, severity=severity, declared_at=ago(minutes=minutes))
    assert is_stale(config, incident, NOW) is stale

    view = build_digest(config, NOW, [incident], {}, lambda services: [])
    assert [row.stale for g in view.groups for row in g.rows] == [stale]

    out = tmp_path / "site"
    publish_site(out, [incident], load_services(config.services_file), config, NOW)
    flags = parse(out / "index.html").find("tr", data_ref="INC-1").find_all("td")[7].text()
    assert ("stale" in flags) is stale

    assert (stale_due(config, incident, NOW) is not None) is stale


def test_stale_after_without_severity_is_the_strictest(config):
    strictest = min(s.stale_after_minutes for s in config.severities)
    assert stale_after(config, None) == dt.timedelta(minutes=strictest)
    assert stale_after(config, "SEV4") == dt.timedelta(minutes=1440)


def test_resolved_incident_is_never_stale(config):
    incident = make_incident(1, status="resolved", declared_at=ago(days=3))
    assert not is_stale(config, incident, NOW)


def test_severity_rank_orders_configured_then_unknown_then_none(config):
    ranks = [severity_rank(config, name) for name in ("SEV1", "SEV2", "SEV4", "SEV9", None)]
    assert ranks == sorted(ranks) and len(set(ranks)) == 5


@pytest.mark.parametrize("delta,text", [
    (dt.timedelta(seconds=45), "<1m"),
    (dt.timedelta(minutes=42), "42m"),
    (dt.timedelta(hours=3, minutes=5), "3h 5m"),
    (dt.timedelta(hours=3), "3h"),
    (dt.timedelta(days=2, hours=4), "2d 4h"),
    (None, ""),
])
def test_one_duration_spelling(delta, text):
    assert format_duration(delta) == text
