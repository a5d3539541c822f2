"""On call on the site, in headless Chromium: who is on call now and the coming weeks on
the experts page, the "Declare an incident" links (their mailto: decoded and read back by
mailbot's own parser as a declaration), and the review-age flag. Screenshots go to
test-artifacts/publish/ (docs/make_oncall_screenshots.py writes the ones in docs/img/)."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from mailbot.parsing import parse_mail
from mailbot.parsing.language import Language
from mailbot.publish import publish_site
from mailbot.services import load_services

from tests.support.dom import parse
from tests.support.factory import SERVICES_TOML, make_config, make_incident
from tests.test_publish_browser import ARTIFACTS, png_facts, require_chromium, run_chromium

# Tuesday 2026-10-27 13:00 in Berlin (CET since Sunday's change back from summer time).
NOW = dt.datetime(2026, 10, 27, 12, 0, tzinfo=dt.timezone.utc)

ROTATION = SERVICES_TOML.replace('''[[services.pay.experts]]
name = "Quinn Ade"
address = "quinn@example.com"
role = "on-call"
''', '''reviewed = 2026-03-01
[[services.pay.experts]]
name = "Quinn Ade"
address = "quinn@example.com"
role = "on-call"
[[services.pay.experts]]
name = "Uma Berg"
address = "uma@example.com"
role = "on-call"
pager = "uma@page.example.net"
[[services.pay.experts]]
name = "Vic Lund"
address = "vic@example.com"
role = "on-call"
[services.pay.rotation]
members = ["quinn@example.com", "uma@example.com", "vic@example.com"]
start = "2026-03-29"
handover_day = "sunday"
handover_time = "09:00"
timezone = "Europe/Berlin"
[[services.pay.rotation.overrides]]
person = "quinn@example.com"
from = "2026-11-08 09:00"
until = "2026-11-11 18:00"
''').replace('''[services.ledger]
description = "Double-entry ledger database"
''', '''[services.ledger]
description = "Double-entry ledger database"
reviewed = 2026-09-01
''')


@pytest.fixture(scope="module")
def chromium():
    return require_chromium()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oncall-site")
    config = make_config(tmp / "etc", ROTATION)
    out = tmp / "site"
    publish_site(out, [make_incident(1, "Card payments failing", severity="SEV1",
                                     services=("pay",), declared_at=NOW)],
                 load_services(config.services_file), config, NOW)
    return out, config


def dom_of(chromium, site, tmp_path, page):
    return parse(run_chromium(chromium, tmp_path, "--dump-dom", (site[0] / page).as_uri()))


def test_experts_page_shows_who_is_on_call_now_next_and_the_coming_weeks(
        chromium, site, tmp_path):
    dom = dom_of(chromium, site, tmp_path, "experts.html")
    card = dom.find("section", id="svc-pay")
    # Turns from 2026-03-29 09:00: 30 weeks later (2026-10-25) it is turn 30 -> quinn;
    # that week began at 09:00 CET, an hour later in UTC than March's 09:00 CEST.
    now = card.find("p", cls="oncall-now").text()
    assert now == ("On call now: Quinn Ade, until Sun 2026-11-01 09:00 CET; "
                   "next: Uma Berg.")
    rows = [[td.text() for td in tr.find_all("td")]
            for tr in card.find("table", cls="shifts").find_all("tr", cls="shift")]
    assert [r[2] for r in rows] == ["Quinn Ade", "Uma Berg", "Quinn Ade (override)",
                                    "Vic Lund", "Quinn Ade", "Uma Berg"]
    assert rows[0][:2] == ["Sun 2026-10-25 09:00 CET", "Sun 2026-11-01 09:00 CET"]
    assert rows[2][:2] == ["Sun 2026-11-08 09:00 CET", "Wed 2026-11-11 18:00 CET"]
    assert rows[3][:2] == ["Wed 2026-11-11 18:00 CET", "Sun 2026-11-15 09:00 CET"]
    # The experts table says who is on call now; the others are "rotation".
    roles = {tr.find("td").text(): tr.find_all("td")[1].text()
             for tr in card.find_all("tr", cls="expert")}
    assert roles == {"Quinn Ade": "on-call", "Uma Berg": "rotation", "Vic Lund": "rotation"}
    # A service without a rotation shows no rotation block.
    assert dom.find("section", id="svc-checkout").find_all("div", cls="rotation") == []


def _declaration_from(href: str, config):
    """The mail a phone's mail app writes from a mailto: link, read by mailbot."""
    parts = urlsplit(href)
    assert parts.scheme == "mailto"
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    assert set(query) == {"subject", "body"}
    msg = EmailMessage()
    msg["From"] = "olga@example.com"
    msg["To"] = unquote(parts.path)
    msg["Subject"] = query["subject"][0] + "Card payments failing"
    msg["Message-ID"] = "<tap@example.com>"
    msg.set_content(query["body"][0].replace("Summary: ", "Summary: cards declined", 1))
    return unquote(parts.path), query, parse_mail(msg.as_bytes(), Language.from_config(config))


def test_declare_links_open_a_declaration_to_the_list(chromium, site, tmp_path):
    config = site[1]
    board = dom_of(chromium, site, tmp_path, "index.html")
    link = board.find("a", cls="declare-link")
    assert link.text() == "Declare an incident"
    to, query, mail = _declaration_from(link.attrs["href"], config)
    assert to == config.list.address
    assert query["subject"] == ["[DECLARE] "]
    body = query["body"][0]
    assert body.startswith("Summary: \r\nSeverity: \r\nPhase: investigating\r\n")
    assert mail.tags.declare and mail.fields.summary == "cards declined"
    assert mail.fields.phase == "investigating" and mail.fields.services is None
    assert "SEV1, SEV2, SEV3, SEV4" in body

    experts = dom_of(chromium, site, tmp_path, "experts.html")
    link = experts.find("section", id="svc-pay").find("a", cls="declare-link")
    assert link.text() == "Declare an incident on pay"
    to, query, mail = _declaration_from(link.attrs["href"], config)
    assert query["subject"] == ["[DECLARE] pay: "]
    assert mail.tags.declare and mail.tags.title == "pay: Card payments failing"
    assert mail.fields.services == ("pay",)
    assert mail.fields.page is None  # paging stays a choice: only a hint in the text
    assert 'Add "Page: pay" to page whoever is on call.' in query["body"][0]


def test_review_flag_only_on_entries_reviewed_too_long_ago(chromium, site, tmp_path):
    dom = dom_of(chromium, site, tmp_path, "experts.html")
    flagged = {card.attrs["id"] for card in dom.find_all("section", cls="service")
               if card.find_all("p", cls="review-flag")}
    assert flagged == {"svc-pay"}  # 240 days; ledger's 56 days are within 90
    text = dom.find("section", id="svc-pay").find("p", cls="review-flag").text()
    assert text.startswith("Possibly out of date: last reviewed 2026-03-01, 240 days ago")


@pytest.mark.parametrize("page, size", [("index.html", "390,844"),
                                        ("experts.html", "1280,1400")])
def test_oncall_screenshots(chromium, site, tmp_path, page, size):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / f"oncall-{page.replace('.html', '')}.png"
    png.unlink(missing_ok=True)
    run_chromium(chromium, tmp_path, f"--screenshot={png}", f"--window-size={size}",
                 (site[0] / page).as_uri())
    width, _, distinct = png_facts(png)
    assert width == int(size.split(",")[0]) and distinct > 64


def test_a_live_incident_page_names_only_the_person_on_call_now(site):
    """The rotation's other members are "rotation" on the incident page, as in the acks and
    on the experts page, not three people "on-call" at once."""
    out, config = site
    table = parse(out / "incidents" / "INC-1.html").find("table", class_="experts")
    roles, service = {}, ""
    for tr in table.find_all("tr")[1:]:
        cells = [td.text().strip() for td in tr.find_all("td")]
        service = cells[0] or service  # a service's further rows leave its cell empty
        if service == "pay":
            roles[cells[1]] = cells[2]
    on_call = load_services(config.services_file).on_call("pay", NOW)
    assert sorted(roles.values()) == ["on-call", "rotation", "rotation"], roles
    [name] = [n for n, role in roles.items() if role == "on-call"]
    assert on_call is not None and on_call.now.person.split("@")[0] in name.lower()
