"""The published pages in a real browser: headless Chromium over file://.

Screenshots go to test-artifacts/publish/ (git-ignored). Without Chromium these tests skip,
unless CI is set: there a missing browser is a failure, not a silent pass.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from mailbot.publish import publish_site
from mailbot.services import load_services

from tests.support.dom import Node, parse
from tests.support.factory import NOW, hostile_incident, make_config, make_incident, rich_incident

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "publish"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def require_chromium() -> Path:
    """The browser, or a skip (a failure when CI is set) saying how to install it."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        message = (f"{CHROMIUM} not found: install it with `apt-get install chromium` "
                   "to run the browser tests")
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is an error)")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def chromium():
    return require_chromium()


def test_missing_chromium_skips_locally_but_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "none")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_chromium()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    config = make_config(tmp / "etc")
    incidents = [rich_incident(), hostile_incident(3),
                 make_incident(1, "API latency above SLO", severity="SEV1",
                               services=("checkout",), customer_impact=True),
                 make_incident(2, "Search index lagging", severity="SEV3",
                               services=("search",)),
                 make_incident(4, "Cache stampede", status="resolved", severity="SEV2")]
    out = tmp / "site"
    publish_site(out, incidents, load_services(config.services_file), config, NOW)
    return out


def run_chromium(chromium: Path, tmp: Path, *args: str) -> str:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    try:
        done = subprocess.run([str(chromium), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within 60s: {args} (a script blocked it?)")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def png_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, number of distinct scanline byte values) of an 8-bit PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.mark.parametrize("page", ["index.html", "experts.html", "incidents/INC-7.html"])
def test_screenshots(chromium, site, tmp_path, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / (page.replace("/", "-").replace(".html", ".png"))
    png.unlink(missing_ok=True)
    run_chromium(chromium, tmp_path, f"--screenshot={png}", "--window-size=1280,900",
                 (site / page).as_uri())
    width, height, distinct = png_facts(png)
    assert (width, height) == (1280, 900)
    assert png.stat().st_size > 20_000
    assert distinct > 64, "the screenshot is (nearly) blank"


def visible_experts(dom: Node) -> dict[str, list[str]]:
    """Service id -> names of the experts shown (neither the card nor the row hidden)."""
    return {card.attrs["id"]: [tr.find("td").text() for tr in card.find_all("tr", cls="expert")
                               if "hidden" not in tr.attrs]
            for card in dom.find_all("section", cls="service") if "hidden" not in card.attrs}


def filtered(chromium, site, tmp_path, query: str) -> Node:
    url = (site / "experts.html").as_uri() + query
    return parse(run_chromium(chromium, tmp_path, "--dump-dom", url))


def test_filter_box_filters_by_person(chromium, site, tmp_path):
    dom = filtered(chromium, site, tmp_path, "#q=rita")
    assert visible_experts(dom) == {"svc-ledger": ["Rita Gomez"]}
    assert dom.find(id="shown").text() == "1 of 4 services"
    assert "hidden" in dom.find(id="nomatch").attrs


def test_filter_box_by_service_keeps_all_its_people_and_combines_terms(
        chromium, site, tmp_path):
    assert visible_experts(filtered(chromium, site, tmp_path, "#q=Checkout")) == {
        "svc-checkout": ["Olga Petrova", "Pat Kim"]}
    assert visible_experts(filtered(chromium, site, tmp_path, "?q=ledger%20on-call")) == {
        "svc-ledger": ["Rita Gomez"]}
    assert visible_experts(filtered(chromium, site, tmp_path, "#q=OWNER")) == {
        "svc-checkout": ["Pat Kim"], "svc-search": ["Tara Singh"]}


def test_filter_box_without_query_shows_everything_and_says_when_nothing_matches(
        chromium, site, tmp_path):
    everything = visible_experts(filtered(chromium, site, tmp_path, ""))
    assert everything == {"svc-checkout": ["Olga Petrova", "Pat Kim"],
                          "svc-pay": ["Quinn Ade"],
                          "svc-ledger": ["Rita Gomez", "Sam Ortiz"],
                          "svc-search": ["Tara Singh"]}
    dom = filtered(chromium, site, tmp_path, "#q=nobody-here")
    assert visible_experts(dom) == {}
    assert "hidden" not in dom.find(id="nomatch").attrs


def test_hostile_incident_runs_no_script_in_the_browser(chromium, site, tmp_path):
    dom = parse(run_chromium(chromium, tmp_path, "--dump-dom",
                             (site / "incidents" / "INC-3.html").as_uri()))
    assert not dom.find_all("script") and not dom.find_all("img")
    assert dom.find("h1").text() == "INC-3 <script>alert(1)</script>"


def test_docs_screenshot_script_runs(chromium, tmp_path):
    spec = importlib.util.spec_from_file_location("make_screenshots",
                                                  REPO / "docs" / "make_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    img = tmp_path / "img"
    assert module.main(["--site", str(tmp_path / "site"), "--img", str(img)]) == 0
    for name in ("board.png", "experts.png", "incident.png", "incident-day.png"):
        width, _, distinct = png_facts(img / name)
        assert width == 1280 and distinct > 64


def measured(chromium: Path, tmp: Path, page: Path, script: str) -> str:
    """What `script` (an expression) evaluates to once the page is laid out in Chromium."""
    probe = page.with_name("probe-" + page.name)
    probe.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", "<script>document.body.setAttribute('data-probe', JSON.stringify("
        + script + "))</script></body>"), encoding="utf-8")
    try:
        dom = parse(run_chromium(chromium, tmp, "--window-size=1280,900", "--dump-dom",
                                 probe.as_uri()))
    finally:
        probe.unlink()
    return dom.find("body").attrs["data-probe"]


def test_resolved_and_postmortem_due_badges_do_not_touch(chromium, site, tmp_path):
    gap = measured(chromium, tmp_path, site / "incidents" / "INC-4.html", """
        document.querySelector('.flag.info').getBoundingClientRect().left
        - document.querySelector('.status').getBoundingClientRect().right""")
    assert float(gap) >= 6, f"{gap}px between the Resolved and postmortem due badges"


def test_a_list_of_called_services_has_no_space_before_its_commas(chromium, site, tmp_path):
    # "Calls: ledger , checkout" came from a margin after each link.
    gaps = json.loads(measured(chromium, tmp_path, site / "experts.html", """
        [...document.querySelectorAll('.deps a')].filter(a => a.nextSibling
            && a.nextSibling.nodeType === 3 && a.nextSibling.data.startsWith(',')).map(a => {
          const r = document.createRange();
          r.setStart(a.nextSibling, 0); r.setEnd(a.nextSibling, 1);
          return r.getBoundingClientRect().left - a.getBoundingClientRect().right; })"""))
    assert gaps and all(abs(g) < 1 for g in gaps), gaps
