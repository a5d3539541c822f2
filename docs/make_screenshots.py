"""Publish the site for a few realistic example incidents and screenshot it for the docs.

    .venv/bin/python docs/make_screenshots.py            # -> docs/img/*.png, INC-70's height
    .venv/bin/python docs/make_screenshots.py --site /tmp/site --img /tmp/img

Needs headless Chromium (`apt-get install chromium`). The example incidents are built
directly as mailbot.models.Incident, so this runs without a store or any mail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.config import Config, load_config  # noqa: E402
from mailbot.models import ActionItem, Change, Incident, Postmortem, TimelineEntry  # noqa: E402
from mailbot.publish import publish_site  # noqa: E402
from mailbot.services import load_services  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")
NOW = dt.datetime(2024, 5, 2, 14, 5, tzinfo=dt.timezone.utc)


def example_incidents(now: dt.datetime = NOW) -> list[Incident]:
    """Seven incidents of a small SaaS, in every status, with timelines and a postmortem."""
    h = lambda hours: now - dt.timedelta(hours=hours)  # noqa: E731
    m = lambda minutes: now - dt.timedelta(minutes=minutes)  # noqa: E731

    def entry(kind: str, at: dt.datetime, who: str, note: str = "", *changes: Change,
              sent_early: int = 1) -> TimelineEntry:
        return TimelineEntry(kind=kind, at=at, author=who,
                             message_id=f"{kind}.{int(at.timestamp())}@mail.example.com",
                             message_date=at - dt.timedelta(minutes=sent_early),
                             changes=tuple(changes), note=note)

    checkout = Incident(
        id=61, title="Checkout returns 502 for EU customers", severity="SEV1",
        phase="mitigating", commander="alice@example.com",
        roles={"comms": "priya@example.com", "liaison": "jordan@example.com",
               "scribe": "tom.becker@example.com"},
        channel="https://meet.example.com/inc-61", summary="Card payments fail at the last "
        "checkout step with HTTP 502 for customers routed through eu-west.",
        impact="About 40% of EU checkouts fail; no double charges seen.", customer_impact=True,
        services=("payments", "api"), declared_by="alice@example.com", declared_at=h(1.6),
        updated_at=m(12), rejected_count=1,
        timeline=[
            entry("declared", h(1.6), "alice@example.com",
                  "Alerts on checkout 5xx in eu-west since 12:25. Investigating.",
                  Change("severity", None, "SEV2"), Change("phase", None, "investigating"),
                  Change("commander", None, "alice@example.com")),
            entry("updated", h(1.2), "alice@example.com",
                  "Failure rate is climbing; raising to SEV1. Lena is on the bridge.",
                  Change("severity", "SEV2", "SEV1"),
                  Change("roles", {"comms": "priya@example.com"},
                         {"comms": "priya@example.com", "expert": "lena@example.com"})),
            entry("rejected", m(50), "marco@example.com",
                  "Missing: severity, phase. Not applied."),
            entry("updated", m(35), "alice@example.com",
                  "Payment provider confirms a bad TLS certificate rotation on their EU "
                  "endpoint. Failing over to the US endpoint for EU traffic.",
                  Change("phase", "investigating", "mitigating"),
                  Change("roles", {"comms": "priya@example.com", "expert": "lena@example.com"},
                         {"comms": "priya@example.com", "liaison": "jordan@example.com",
                          "scribe": "tom.becker@example.com"})),
            entry("updated", m(12), "alice@example.com",
                  "Failover done for 60% of traffic, error rate down to 15%.", sent_early=3),
        ],
    )
    sso = Incident(
        id=62, title="SSO logins time out for some enterprise tenants", severity="SEV2",
        phase="investigating", commander="sam@example.com", roles={"comms": "priya@example.com"},
        channel="#inc-62 on chat", summary="SAML logins hang for tenants using Okta.",
        impact="Enterprise users cannot log in; password logins work.", customer_impact=True,
        services=("auth",), declared_by="sam@example.com", declared_at=h(2.5), updated_at=h(2.1),
        timeline=[entry("declared", h(2.5), "sam@example.com", "Three tickets in 10 minutes.",
                        Change("severity", None, "SEV2"),
                        Change("phase", None, "investigating"))],
    )
    exports = Incident(
        id=60, title="CSV exports delayed by about 40 minutes", severity="SEV3",
        phase="monitoring", commander="dana@example.com", roles={},
        channel="https://meet.example.com/inc-60", summary="Export jobs queue up behind a "
        "large backfill.", impact="Exports arrive late; nothing lost.", customer_impact=False,
        services=("queue",), declared_by="dana@example.com", declared_at=h(6), updated_at=m(40),
        timeline=[entry("declared", h(6), "dana@example.com", "Backfill saturating workers."),
                  entry("updated", m(40), "dana@example.com", "Backfill paused; queue draining.",
                        Change("phase", "mitigating", "monitoring"))],
    )
    ci = Incident(
        id=63, title="Staging deploys blocked: CI runner disk full", severity="SEV4",
        phase="identified", commander="ben@example.com", channel="#ci", summary="Runners "
        "out of disk.", customer_impact=False, services=("build",), declared_at=m(25),
        updated_at=m(25), declared_by="ben@example.com",
        timeline=[entry("declared", m(25), "ben@example.com", "Cleaning old images.")],
    )
    api_errors = Incident(
        id=59, title="Elevated API error rate after the 10:00 deploy", status="resolved",
        severity="SEV2", phase="resolved", commander="marco@example.com",
        roles={"comms": "priya@example.com"}, channel="https://meet.example.com/inc-59",
        summary="5% of API requests returned 500 after a deploy.", customer_impact=True,
        impact="Integrations saw errors for 25 minutes.", services=("api",),
        declared_by="marco@example.com", declared_at=h(4), updated_at=h(3.5),
        resolved_at=h(3.5),
        timeline=[entry("declared", h(4), "marco@example.com", "Rolling back."),
                  entry("resolved", h(3.5), "marco@example.com", "Rollback complete.",
                        Change("phase", "mitigating", "resolved"))],
    )
    failover = Incident(
        id=58, title="Primary database failover left replicas read-only", status="closed",
        severity="SEV1", phase="resolved", commander="grace@example.com",
        roles={"liaison": "jordan@example.com", "comms": "priya@example.com"},
        channel="https://meet.example.com/inc-58", summary="After a host failure the new "
        "primary came up but writes failed for 18 minutes.", customer_impact=True,
        impact="All writes failed for 18 minutes.", services=("db",),
        declared_by="grace@example.com", declared_at=h(80), updated_at=h(78),
        resolved_at=h(78), closed_at=h(30),
        timeline=[entry("declared", h(80), "grace@example.com", "Writes failing."),
                  entry("resolved", h(78), "grace@example.com", "Replicas promoted.",
                        Change("phase", "mitigating", "resolved"))],
        postmortem=Postmortem(
            accepted_at=h(30), author="grace@example.com", message_id="pm58@mail.example.com",
            text="", sections={
                "Cause": "The failover script promoted the replica but did not update the "
                         "connection pooler, which kept sending writes to the old host.",
                "Impact": "All writes failed for 18 minutes; reads worked.",
                "Resolution": "Updated the pooler by hand, then restarted the API pods.",
                "Prevention": "Make the pooler follow the promoted primary; test failover "
                              "monthly.",
            },
            action_items=(
                ActionItem("Pooler follows the promoted primary", "grace@example.com",
                           (now + dt.timedelta(days=3)).date()),
                ActionItem("Monthly failover drill", "ben@example.com",
                           (now + dt.timedelta(days=45)).date()),
            )),
    )
    cdn = Incident(
        id=57, title="Stale assets served after CDN purge failed", status="closed",
        severity="SEV3", phase="resolved", commander="priya@example.com",
        channel="#inc-57", summary="Purge API errors left old JS bundles cached.",
        customer_impact=False, services=("edge", "web"), declared_by="priya@example.com",
        declared_at=h(130), updated_at=h(129), resolved_at=h(129), closed_at=h(100),
        timeline=[entry("declared", h(130), "priya@example.com", "Purge failing.")],
    )
    return [checkout, sso, exports, ci, api_errors, failover, cdn]


def one_day_sev1(now: dt.datetime = NOW) -> Incident:
    """A SEV1 that lasted a day: twelve updates, a stale reminder before each, four
    rejected follow-ups; the incident page whose length issue 19 measured."""
    start = now - dt.timedelta(hours=26)
    t = lambda minutes: start + dt.timedelta(minutes=minutes)  # noqa: E731
    timeline = [TimelineEntry(
        "declared", t(0), "alice@example.com", "d@x", t(0),
        (Change("severity", None, "SEV1"), Change("phase", None, "investigating")),
        "Orders are not being written; the queue backs up.")]
    m = 0
    for i in range(12):
        m += 35
        timeline.append(TimelineEntry(
            "reminder", t(m), "mailbot@example.com",
            note="stale-update reminder to alice@example.com, incidents@example.com"))
        if i % 3 == 1:
            m += 5
            timeline.append(TimelineEntry(
                "rejected", t(m), "marco@example.com", f"r{i}@x", t(m), (),
                "Missing: Phase, Commander. Not applied.",
                text="Still looking at it, will update soon.\n\nMarco"))
        m += 60
        timeline.append(TimelineEntry(
            "updated", t(m), "alice@example.com", f"u{i}@x", t(m),
            (Change("phase", "investigating", "mitigating"),) if i == 3 else (),
            f"Update {i + 1}: replaying the backlog, {10 * i}% done."))
    timeline.append(TimelineEntry(
        "resolved", t(m + 30), "alice@example.com", "res@x", t(m + 30),
        (Change("phase", "mitigating", "resolved"),), "Backlog replayed; orders flowing."))
    return Incident(
        id=70, title="Orders not written: queue backlog", status="resolved", severity="SEV1",
        phase="resolved", commander="Alice Martin <alice@example.com>",
        roles={"comms": "priya@example.com"}, channel="https://meet.example.com/inc-70",
        summary="Order writes failed.", impact="No orders for a day.", customer_impact=True,
        services=("api", "payments"), declared_by="alice@example.com", declared_at=t(0),
        updated_at=t(m + 30), resolved_at=t(m + 30), rejected_count=4, timeline=timeline)


def page_height(page: Path) -> int:
    """The laid-out height of `page` in px, at the screenshots' width, in Chromium."""
    probe = page.with_name("height-probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", "<script>document.body.setAttribute('data-height', "
        "document.documentElement.scrollHeight)</script></body>"), encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run(
                [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 "--window-size=1280,900", "--dump-dom", probe.as_uri()],
                check=True, timeout=120, capture_output=True, text=True).stdout
    finally:
        probe.unlink()
    return int(re.search(r'data-height="(\d+)"', dom).group(1))


def example_config(workdir: Path) -> Config:
    """The repo's services file with an otherwise default configuration."""
    path = workdir / "mailbot.toml"
    path.write_text(
        '[list]\nname = "Example Corp incidents"\n'
        f'[services]\nfile = "{REPO / "config" / "services.toml"}"\n',
        encoding="utf-8",
    )
    return load_config(path)


def screenshot(url: str, png: Path, size: str = "1280,900") -> None:
    """Render `url` in headless Chromium and save a PNG of the viewport."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--screenshot={png}", f"--window-size={size}", url],
            check=True, timeout=120, capture_output=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=REPO / "test-artifacts" / "example-site")
    parser.add_argument("--img", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = example_config(Path(tmp))
        directory = load_services(config.services_file)
        publish_site(args.site, example_incidents() + [one_day_sev1()], directory, config, NOW)
    args.img.mkdir(parents=True, exist_ok=True)
    site = args.site.resolve()
    screenshot((site / "index.html").as_uri(), args.img / "board.png", "1280,1000")
    screenshot((site / "experts.html").as_uri(), args.img / "experts.png", "1280,1000")
    screenshot((site / "incidents" / "INC-61.html").as_uri(), args.img / "incident.png",
               "1280,1400")
    day = site / "incidents" / "INC-70.html"
    height = page_height(day)
    screenshot(day.as_uri(), args.img / "incident-day.png", f"1280,{height}")
    print(f"INC-70 (a one-day SEV1) page height: {height} px")
    print(f"site: {site}\nscreenshots: {args.img}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
