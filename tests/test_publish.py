"""The static site, read back through an HTML parser: board order, incident pages, experts,
escaping, relative links, and republishing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
from urllib.parse import unquote, urlsplit

import pytest

import mailbot.publish as publish
from mailbot.models import TimelineEntry
from mailbot.publish import publish_site
from mailbot.services import load_services

from tests.support.dom import Node, parse
from tests.support.factory import (HOSTILE, NOW, ago, hostile_incident, make_config, make_incident,
                      rich_incident)


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path / "etc")


@pytest.fixture
def directory(config):
    return load_services(config.services_file)


@pytest.fixture
def out(tmp_path):
    return tmp_path / "site"


def board_refs(page: Node, section: str) -> list[str]:
    return [tr.attrs["data-ref"] for tr in page.find("section", id=section).find_all("tr")
            if "data-ref" in tr.attrs]


def test_board_lists_open_by_severity_then_resolved_then_closed(out, config, directory):
    incidents = [
        make_incident(1, severity="SEV3", declared_at=ago(hours=5)),
        make_incident(2, status="resolved", resolved_at=ago(hours=3)),
        make_incident(3, severity="SEV1", declared_at=ago(hours=9)),
        make_incident(4, status="closed", closed_at=ago(days=3)),
        make_incident(5, severity=None, declared_at=ago(minutes=5)),
        make_incident(6, severity="SEV1", declared_at=ago(hours=1)),  # newer SEV1 first
        make_incident(7, status="closed", closed_at=ago(days=1)),
        make_incident(8, status="resolved", resolved_at=ago(hours=1)),
        make_incident(9, severity="SEV4"),
        make_incident(10, severity="SEV2", customer_impact=True),
    ]
    random.Random(4).shuffle(incidents)
    publish_site(out, incidents, directory, config, NOW)
    page = parse(out / "index.html")
    assert board_refs(page, "open") == ["INC-6", "INC-3", "INC-10", "INC-1", "INC-9", "INC-5"]
    assert board_refs(page, "resolved") == ["INC-8", "INC-2"]
    assert board_refs(page, "closed") == ["INC-7", "INC-4"]

    row = page.find("tr", data_ref="INC-10")
    cells = [td.text() for td in row.find_all("td")]
    assert cells[:5] == ["INC-10", "Incident 10", "SEV2", "investigating", "Olga Petrova"]
    assert cells[5] == "10h" and cells[6] == "10h ago"  # age, last update
    assert "no liaison" in cells[7] and "stale" in cells[7]  # SEV2 goes stale after 60m
    assert row.find("a").attrs["href"] == "incidents/INC-10.html"
    assert "no liaison" not in page.find("tr", data_ref="INC-1").text()
    # the severity definitions travel with the board
    defs = page.find("section", id="severities").find("dl")
    assert [dt_.text() for dt_ in defs.find_all("dt")] == ["SEV1", "SEV2", "SEV3", "SEV4"]
    assert "future of the company" in defs.text()


def test_incident_page_shows_declaration_timeline_rejections_and_postmortem(
        out, config, directory):
    incident = rich_incident()
    pages = publish_site(out, [incident], directory, config, NOW)
    assert out / "incidents" / "INC-7.html" in pages
    page = parse(out / "incidents" / "INC-7.html")

    decl = {dt_.text(): dd.text() for dt_, dd in _pairs(page.find("section", id="declaration"))}
    assert decl["What"] == "Card payments return 502"
    assert decl["Severity"].startswith("SEV1 Critical")
    assert decl["Phase"] == "resolved"
    assert decl["Commander"] == "Olga Petrova <olga@example.com>"
    assert decl["Channel"] == "https://meet.example.com/inc-7"
    assert decl["Roles"] == "comms: Pat Kim <pat@example.com> liaison: Rita Gomez <rita@example.com>"
    impact = page.find("section", id="impact").text()
    assert "40% of EU checkouts fail" in impact and "yes" in impact

    entries = page.find("ol", cls="timeline").find_all("li", cls="entry")
    assert len(entries) == 4
    assert [e.find("span", cls="kind").text() for e in entries] == [
        "declared", "rejected", "updated", "resolved"]
    update = entries[2]
    assert "Olga Petrova" in update.text()
    assert update.find("time", cls="received").attrs["datetime"] == "2024-05-01T08:40:00+00:00"
    assert update.find("time", cls="sent").text() == "2024-05-01 08:39 UTC"
    changes = [(c.find("strong").text(), c.find("span", cls="old").text(),
                c.find("span", cls="new").text()) for c in update.find_all("li", cls="change")]
    assert changes == [("severity", "SEV2", "SEV1"),
                       ("roles", "comms=pat@example.com",
                        "comms=pat@example.com, liaison=rita@example.com")]
    # the note keeps its line breaks (rendered with pre-wrap)
    note = update.find("p", cls="note")
    assert "".join(c for c in note.children if isinstance(c, str)) == (
        "Provider confirms a bad certificate.\nFailing over.")
    assert entries[0].find("span", cls="old").text() == "—"

    assert "3 rejected" in page.find("p", cls="rejected-count").text()
    assert "3 rejected messages" in page.find("section", id="timeline").find("h2").text()

    pm = page.find("section", id="postmortem")
    # The headings as the author wrote them; no raw keys; the items listed once.
    assert [h.text() for h in pm.find_all("h3")] == [
        "Root cause", "Impact", "Steps taken", "Prevention", "Follow-ups",
        "Moved to quarterly planning"]
    assert "action_items" not in pm.text() and "- Add certificate" not in pm.text()
    assert "Certificate rotation was not tested." in pm.text()
    assert "Reviewed" in pm.find("p", cls="meta").text()
    rows = pm.find("table", cls="actions").find("tbody").find_all("tr")
    cells = [[td.text() for td in r.find_all("td")] for r in rows]
    assert [(c[0], c[1], c[4].split()[0]) for c in cells] == [
        ("A1", "Add certificate expiry alert", "open"),  # due 2024-05-04
        ("A2", "Rotate the staging certificate", "done")]
    assert pm.find("ul", cls="quarterly").text().startswith("Provider redundancy")


def test_incident_page_lists_experts_of_services_and_their_dependencies(
        out, config, directory):
    publish_site(out, [rich_incident()], directory, config, NOW)
    page = parse(out / "incidents" / "INC-7.html")
    section = page.find("section", id="services")
    rows = section.find("table", cls="experts").find("tbody").find_all("tr")
    got = [(r.attrs["data-service"], r.find_all("td")[1].find("a").text(),
            r.find_all("td")[1].find("a").attrs["href"]) for r in rows]
    assert got == [
        ("checkout", "Olga Petrova", "mailto:olga@example.com"),
        ("checkout", "Pat Kim", "mailto:pat@example.com"),
        ("pay", "Quinn Ade", "mailto:quinn@example.com"),
        ("ledger", "Rita Gomez", "mailto:rita@example.com"),
        ("ledger", "Sam Ortiz", "mailto:sam@example.com"),
    ]
    assert "ledger" in rows[3].text() and "pay calls it" in rows[3].text()
    assert section.find("p", cls="unknown-services").text().endswith("nope")


def test_experts_page_lists_every_service(out, config, directory):
    publish_site(out, [], directory, config, NOW)
    page = parse(out / "experts.html")
    cards = page.find_all("section", cls="service")
    assert [c.attrs["id"] for c in cards] == ["svc-checkout", "svc-pay", "svc-ledger",
                                              "svc-search"]
    checkout = cards[0]
    assert "Checkout pages and the cart" in checkout.text()
    assert "Page the checkout on-call, then the owner." in checkout.find(
        "p", cls="escalation").text()
    experts = [(tr.find_all("td")[0].text(), tr.find_all("td")[1].text(),
                tr.find("a").attrs["href"]) for tr in checkout.find_all("tr", cls="expert")]
    assert experts == [("Olga Petrova", "on-call", "mailto:olga@example.com"),
                       ("Pat Kim", "owner", "mailto:pat@example.com")]
    deps = [p.text() for p in cards[1].find_all("p", cls="deps")]
    assert deps == ["Calls: ledger, checkout", "Called by: checkout"]
    assert page.find("input", id="q") is not None
    (script,) = page.find_all("script")
    assert "src" not in script.attrs and "querySelectorAll" in script.text()


def test_empty_directory_and_no_incidents_still_make_a_site(out, tmp_path):
    config = make_config(tmp_path / "empty", services_toml="")
    directory = load_services(config.services_file)
    pages = publish_site(out, [], directory, config, NOW)
    assert sorted(p.relative_to(out).as_posix() for p in pages) == [
        "action-items.html", "archive/1.html", "experts.html", "index.html", "metrics.html"]
    assert "No services are listed yet" in parse(out / "experts.html").text()
    assert "No open incidents." in parse(out / "index.html").text()


def test_everything_from_mail_is_text_not_markup(out, config, directory):
    incidents = [hostile_incident(1), hostile_incident(2, "resolved"),
                 hostile_incident(3, "closed")]
    publish_site(out, incidents, directory, config, NOW)
    for path in [out / "index.html", out / "archive" / "1.html",
                 *(out / "incidents").glob("*.html")]:
        page = parse(path)
        assert not page.find_all("script"), path
        assert not page.find_all("img") and not page.find_all("svg"), path
        for node in page.iter():
            assert not any(k.startswith("on") for k in node.attrs), (path, node)
            href = node.attrs.get("href") or ""
            assert not href.lower().startswith("javascript"), (path, node)
        text = page.text()
        assert "<script>alert(1)</script>" in text, path
    page = parse(out / "incidents" / "INC-1.html")
    decl = {dt_.text(): dd.text() for dt_, dd in _pairs(page.find("section", id="declaration"))}
    assert decl["What"] == HOSTILE[1]
    assert decl["Channel"] == HOSTILE[3]  # not http(s): shown, never linked
    assert decl["Commander"] == HOSTILE[2]
    assert HOSTILE[0] in decl["Roles"] and HOSTILE[1] in decl["Roles"]
    assert HOSTILE[0] in page.find("title").text()


def test_hostile_directory_text_is_escaped_too(out, tmp_path):
    toml = ('[services.api]\ndescription = "<script>alert(1)</script>"\n'
            'escalation = "<img src=x onerror=alert(1)>"\n'
            '[[services.api.experts]]\nname = "<b onmouseover=alert(1)>Bob</b>"\n'
            'address = "bob@example.com"\nrole = "<i>x</i>"\n')
    config = make_config(tmp_path / "h", services_toml=toml)
    publish_site(out, [make_incident(1, services=("api",))], load_services(
        config.services_file), config, NOW)
    for name in ("experts.html", "incidents/INC-1.html"):
        page = parse(out / name)
        assert [s for s in page.find_all("script") if "querySelectorAll" not in s.text()] == []
        assert not page.find_all("img") and not page.find_all("b") and not page.find_all("i")
        assert "<b onmouseover=alert(1)>Bob</b>" in page.text()


def test_links_are_relative_and_resolve_and_nothing_is_loaded_from_elsewhere(
        out, config, directory):
    incidents = [rich_incident(), make_incident(1, services=("pay",)),
                 make_incident(2, status="resolved")]
    pages = publish_site(out, incidents, directory, config, NOW)
    assert len(pages) == 8  # 3 incidents, board, archive, experts, action items, metrics
    for path in pages:
        page = parse(path)
        assert not page.find_all("link") and not page.find_all("iframe"), path
        for node in page.iter():
            assert "src" not in node.attrs, (path, node)  # no external scripts or images
            href = node.attrs.get("href")
            if href is None:
                continue
            parts = urlsplit(href)
            if parts.scheme in ("mailto", "https"):
                continue
            assert not parts.scheme and not parts.netloc and not href.startswith("/"), href
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            assert target.is_file(), (path, href)
            if parts.fragment and not parts.fragment.startswith("q="):
                assert parse(target).find_all(id=parts.fragment), (path, href)


def test_prefix_and_time_zone_come_from_config(out, tmp_path):
    config = make_config(tmp_path / "ops", extra='[schedule]\ntimezone = "Europe/Berlin"\n')
    config = dataclasses.replace(config, list=dataclasses.replace(config.list,
                                                                  incident_prefix="OPS"))
    publish_site(out, [rich_incident()], load_services(config.services_file), config, NOW)
    assert (out / "incidents" / "OPS-7.html").is_file()
    page = parse(out / "incidents" / "OPS-7.html")
    assert page.find("h1").text().startswith("OPS-7 ")
    assert page.find("time", cls="received").text() == "2024-05-01 10:00 CEST"
    assert board_refs(parse(out / "index.html"), "closed") == ["OPS-7"]


def test_naive_times_are_taken_as_utc(out, config, directory):
    naive = make_incident(1, declared_at=ago(hours=2).replace(tzinfo=None))
    publish_site(out, [naive, make_incident(2, declared_at=ago(hours=1))], directory, config,
                 NOW)
    board = parse(out / "index.html")
    assert board_refs(board, "open") == ["INC-2", "INC-1"]
    assert board.find("tr", data_ref="INC-1").find_all("td")[5].text() == "2h"


def test_republish_rewrites_only_what_changed(out, config, directory):
    closed, open_ = rich_incident(), make_incident(1)
    publish_site(out, [closed, open_], directory, config, NOW)
    inode = {p.name: p.stat().st_ino for p in (out / "incidents").iterdir()}
    later = NOW + dt.timedelta(minutes=10)
    publish_site(out, [closed, open_], directory, config, later)
    assert (out / "incidents" / "INC-7.html").stat().st_ino == inode["INC-7.html"]
    assert (out / "incidents" / "INC-1.html").stat().st_ino != inode["INC-1.html"]
    # a change to a closed incident does reach its page
    closed.title = "Payments fail (renamed)"
    publish_site(out, [closed, open_], directory, config, later)
    assert parse(out / "incidents" / "INC-7.html").find("h1").text().endswith("(renamed)")
    assert not [p for p in out.rglob(".*")], "no temporary files left behind"


def test_closed_incidents_page_into_the_archive(out, config, directory, monkeypatch):
    monkeypatch.setattr(publish, "ARCHIVE_PAGE_SIZE", 3)
    monkeypatch.setattr(publish, "BOARD_CLOSED", 2)
    closed = [make_incident(n, status="closed", closed_at=ago(days=n)) for n in range(1, 9)]
    publish_site(out, [make_incident(100), *closed], directory, config, NOW)
    board = parse(out / "index.html")
    assert board_refs(board, "closed") == ["INC-1", "INC-2"]
    assert board.find("section", id="closed").find("a", href="archive/1.html")
    archived = []
    for n in (1, 2, 3):
        archived += [tr.attrs["data-ref"] for tr in
                     parse(out / "archive" / f"{n}.html").find_all("tr") if "data-ref" in tr.attrs]
    assert archived == [f"INC-{n}" for n in range(1, 9)]
    publish_site(out, closed[:4], directory, config, NOW)
    assert sorted(os.listdir(out / "archive")) == ["1.html", "2.html"]


def test_many_incidents_stream_through(out, config, directory):
    """Incidents are consumed lazily, one page at a time, and the board stays small."""
    consumed = []

    def generate(n):
        for i in range(1, n + 1):
            consumed.append(i)
            # every incident page is written before the next incident is even built
            assert i == 1 or (out / "incidents" / f"INC-{i - 1}.html").is_file()
            yield make_incident(i, status="closed" if i % 10 else "open",
                                closed_at=ago(minutes=i), services=("checkout",))

    pages = publish_site(out, generate(3000), directory, config, NOW)
    assert consumed == list(range(1, 3001))
    assert len(pages) == 3000 + 4 + 6  # incidents, board, experts, action items, metrics,
    # 6 archive pages
    assert (out / "index.html").stat().st_size < 400_000


def _pairs(section: Node):
    dl = section.find("dl")
    items = [n for n in dl.children if isinstance(n, Node)]
    return [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)
            if items[i].tag == "dt" and items[i + 1].tag == "dd"]


def test_board_commander_shows_the_name_and_links_the_address(out, config, directory):
    incidents = [make_incident(1, commander="Lena Fischer <lena.fischer@example.com>"),
                 make_incident(2, commander="rita@example.com"),  # the directory names her
                 make_incident(3, commander="Bob")]
    publish_site(out, incidents, directory, config, NOW)
    rows = {tr.attrs["data-ref"]: tr.find_all("td")[4]
            for tr in parse(out / "index.html").find("section", id="open").find_all("tr")
            if "data-ref" in tr.attrs}
    assert rows["INC-1"].text() == "Lena Fischer"
    assert rows["INC-1"].find("a").attrs["href"] == "mailto:lena.fischer@example.com"
    assert rows["INC-2"].text() == "Rita Gomez"
    assert rows["INC-2"].find("a").attrs["href"] == "mailto:rita@example.com"
    assert rows["INC-3"].text() == "Bob" and not rows["INC-3"].find_all("a")
    # The incident page keeps the address beside the name.
    decl = dict((d.text(), v.text()) for d, v in _pairs(
        parse(out / "incidents" / "INC-1.html").find("section", id="declaration")))
    assert decl["Commander"] == "Lena Fischer <lena.fischer@example.com>"


def test_resolved_and_closed_incidents_show_how_long_they_lasted(out, config, directory):
    began = ago(days=2)
    incidents = [make_incident(1, status="resolved", declared_at=began,
                               resolved_at=began + dt.timedelta(hours=3, minutes=5)),
                 make_incident(2, status="closed", declared_at=began,
                               started_at=began - dt.timedelta(hours=1),
                               resolved_at=began + dt.timedelta(minutes=40)),
                 make_incident(3, declared_at=ago(hours=5))]

    def lasted(now):
        publish_site(out, incidents, directory, config, now)
        board = parse(out / "index.html")
        cells = {tr.attrs["data-ref"]: tr.find("td", cls="age").text()
                 for tr in board.find_all("tr") if "data-ref" in tr.attrs}
        heads = [s.find_all("th")[5].text() for s in
                 (board.find("section", id=i) for i in ("open", "resolved", "closed"))]
        header = parse(out / "incidents" / "INC-1.html").find("p", cls="badges")
        return cells, heads, header.find("span", cls="age").text()

    cells, heads, header = lasted(NOW)
    assert cells == {"INC-1": "3h 5m", "INC-2": "1h 40m", "INC-3": "5h"}  # Started-At counts
    assert heads == ["Age", "Lasted", "Lasted"]
    assert header == "· lasted 3h 5m"
    later = lasted(NOW + dt.timedelta(days=4))
    assert later[0]["INC-1"] == "3h 5m" and later[0]["INC-2"] == "1h 40m"
    assert later[2] == "· lasted 3h 5m"


def test_reminders_and_rejections_fold_and_a_rejection_shows_its_message(
        out, config, directory):
    t0 = ago(hours=20)
    at = lambda minutes: t0 + dt.timedelta(minutes=minutes)  # noqa: E731
    timeline = [
        TimelineEntry("declared", at(0), "olga@example.com", "d@x", at(0), (), "Down."),
        TimelineEntry("reminder", at(40), "bot@example.com", note="stale-update reminder"),
        TimelineEntry("rejected", at(45), "pat@example.com", "r@x", at(45), (),
                      "Missing: Phase.", text="Still <b>looking</b>, more soon."),
        TimelineEntry("reminder", at(80), "bot@example.com", note="stale-update reminder"),
        TimelineEntry("updated", at(90), "olga@example.com", "u@x", at(90), (), "Fixed."),
        TimelineEntry("reminder", at(130), "bot@example.com", note="reminder"),
    ]
    publish_site(out, [make_incident(1, timeline=timeline, rejected_count=1)], directory,
                 config, NOW)
    ol = parse(out / "incidents" / "INC-1.html").find("ol", cls="timeline")
    top = [c for c in ol.children if not isinstance(c, str)]
    assert [("folded" if "folded" in li.classes else li.find("span", cls="kind").text())
            for li in top] == ["declared", "folded", "updated", "folded"]
    first, last = top[1], top[3]
    assert first.find("details").attrs.get("open") is None  # closed until clicked
    assert first.find("summary").text().startswith("2 reminders, 1 rejected message")
    assert last.find("summary").text().startswith("1 reminder ")
    folded = [li.find("span", cls="kind").text()
              for li in first.find("details").find_all("li", cls="entry")]
    assert folded == ["reminder", "rejected", "reminder"]
    rejected = first.find("li", cls="kind-rejected")
    assert rejected.find("p", cls="note").text() == "Missing: Phase."
    assert rejected.find("blockquote", cls="message").text() == "Still <b>looking</b>, more soon."


def test_escalation_urls_are_links_and_nothing_else_is(out, tmp_path):
    config = make_config(tmp_path / "etc", services_toml='''
[services.api]
description = "API"
escalation = "Page https://pager.example.com/api?team=1&x=2, then <b>ask</b> in javascript:alert(1) or https://chat.example.com/r."
[[services.api.experts]]
name = "Ana"
address = "ana@example.com"
''')
    publish_site(out, [], load_services(config.services_file), config, NOW)
    p = parse(out / "experts.html").find("p", cls="escalation")
    assert [a.attrs["href"] for a in p.find_all("a")] == [
        "https://pager.example.com/api?team=1&x=2", "https://chat.example.com/r"]
    assert p.text() == ("Escalation: Page https://pager.example.com/api?team=1&x=2, then "
                        "<b>ask</b> in javascript:alert(1) or https://chat.example.com/r.")
    assert not p.find_all("b")
