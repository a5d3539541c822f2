"""Incidents, services and configuration for the site tests, built directly from the models."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mailbot.config import Config, load_config
from mailbot.models import ActionItem, Change, Incident, Postmortem, TimelineEntry

NOW = dt.datetime(2024, 5, 2, 14, 0, tzinfo=dt.timezone.utc)

SERVICES_TOML = '''
[services.checkout]
description = "Checkout pages and the cart"
aliases = ["cart"]
depends_on = ["pay"]
escalation = "Page the checkout on-call, then the owner."
runbook = "https://wiki.example.com/checkout"
[[services.checkout.experts]]
name = "Olga Petrova"
address = "olga@example.com"
role = "on-call"
[[services.checkout.experts]]
name = "Pat Kim"
address = "pat@example.com"
role = "owner"

[services.pay]
description = "Payment processing"
depends_on = ["ledger", "checkout"]   # a cycle with checkout
[[services.pay.experts]]
name = "Quinn Ade"
address = "quinn@example.com"
role = "on-call"

[services.ledger]
description = "Double-entry ledger database"
[[services.ledger.experts]]
name = "Rita Gomez"
address = "rita@example.com"
role = "on-call"
[[services.ledger.experts]]
name = "Sam Ortiz"
address = "sam@example.com"
role = "expert"

[services.search]
description = "Product search index"
[[services.search.experts]]
name = "Tara Singh"
address = "tara@example.com"
role = "owner"
'''


def make_config(tmp: Path, services_toml: str = SERVICES_TOML, extra: str = "") -> Config:
    """A configuration whose services file is `services_toml`, written under `tmp`."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "services.toml").write_text(services_toml, encoding="utf-8")
    path = tmp / "mailbot.toml"
    path.write_text('[list]\nname = "Test incidents"\n[services]\nfile = "services.toml"\n'
                    + extra, encoding="utf-8")
    return load_config(path)


def ago(**kw: float) -> dt.datetime:
    return NOW - dt.timedelta(**kw)


def make_incident(id: int, title: str = "", **kw) -> Incident:
    """An incident with sensible defaults for whatever the test does not care about."""
    status = kw.setdefault("status", "open")
    kw.setdefault("severity", "SEV2")
    kw.setdefault("phase", "resolved" if status != "open" else "investigating")
    kw.setdefault("commander", "olga@example.com")
    kw.setdefault("declared_at", ago(hours=id))
    kw.setdefault("updated_at", kw["declared_at"])
    if status in ("resolved", "closed"):
        kw.setdefault("resolved_at", kw["declared_at"] + dt.timedelta(minutes=30))
    if status == "closed":
        kw.setdefault("closed_at", kw["resolved_at"] + dt.timedelta(hours=1))
    return Incident(id=id, title=title or f"Incident {id}", **kw)


def rich_incident() -> Incident:
    """A resolved-then-closed incident with a full timeline, rejections and a postmortem."""
    t0 = ago(hours=30)
    return make_incident(
        7, "Payments fail for card holders in the EU", status="closed", severity="SEV1",
        commander="olga@example.com", roles={"comms": "pat@example.com",
                                              "liaison": "rita@example.com"},
        channel="https://meet.example.com/inc-7", summary="Card payments return 502",
        impact="40% of EU checkouts fail", customer_impact=True, services=("checkout", "nope"),
        declared_by="olga@example.com", declared_at=t0, rejected_count=3,
        resolved_at=t0 + dt.timedelta(hours=2), closed_at=t0 + dt.timedelta(hours=20),
        timeline=[
            TimelineEntry("declared", t0, "olga@example.com", "m1@example.com",
                          t0 - dt.timedelta(minutes=2),
                          (Change("severity", None, "SEV2"),), "Alerts firing."),
            TimelineEntry("rejected", t0 + dt.timedelta(minutes=20), "pat@example.com",
                          "m2@example.com", None, (), "missing: severity, phase"),
            TimelineEntry("updated", t0 + dt.timedelta(minutes=40), "olga@example.com",
                          "m3@example.com", t0 + dt.timedelta(minutes=39),
                          (Change("severity", "SEV2", "SEV1"),
                           Change("roles", {"comms": "pat@example.com"},
                                  {"comms": "pat@example.com", "liaison": "rita@example.com"})),
                          "Provider confirms a bad certificate.\nFailing over."),
            TimelineEntry("resolved", t0 + dt.timedelta(hours=2), "olga@example.com",
                          "m4@example.com", t0 + dt.timedelta(hours=2),
                          (Change("phase", "mitigating", "resolved"),), "All green."),
        ],
        # As the pipeline stores it: section keys, the headings as the author wrote them,
        # numbered items (one done), the far-out one moved to quarterly planning.
        postmortem=Postmortem(
            accepted_at=t0 + dt.timedelta(hours=20), author="olga@example.com",
            message_id="pm@example.com", text="",
            sections={"cause": "Certificate rotation was not tested.",
                      "impact": "EU card payments failed for two hours.",
                      "resolution": "Failed over to the US endpoint.",
                      "prevention": "Monitor certificate expiry on the provider side.",
                      "action_items": "- Add certificate expiry alert - owner: olga@example.com"
                                      "\n- Rotate the staging certificate - owner: @pat"},
            headings={"cause": "Root cause", "impact": "Impact",
                      "resolution": "Steps taken", "prevention": "Prevention",
                      "action_items": "Follow-ups"},
            action_items=(
                ActionItem("Add certificate expiry alert", "olga@example.com",
                           (t0 + dt.timedelta(days=3)).date(), number=1),
                ActionItem("Rotate the staging certificate", "pat@example.com",
                           (t0 + dt.timedelta(days=1)).date(), number=2,
                           done_at=t0 + dt.timedelta(hours=22), done_by="pat@example.com"),
            ),
            quarterly=(ActionItem("Provider redundancy", "pat@example.com",
                                  (t0 + dt.timedelta(days=60)).date()),),
            reviewed_at=t0 + dt.timedelta(hours=20), reviewed_by="cto@example.com"),
    )


HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
           '"><svg onload=alert(1)>', "javascript:alert(1)"]


def hostile_incident(n: int, status: str = "open") -> Incident:
    a, b, c, d = HOSTILE
    when = ago(hours=2)
    return make_incident(
        n, a, status=status, summary=b, channel=d, commander=c, impact=a,
        roles={a: b, "liaison": c}, services=(a, "checkout"), customer_impact=True,
        declared_by=b, severity="SEV1",
        timeline=[TimelineEntry("declared", when, a, message_id=b, message_date=when,
                                changes=(Change("summary", a, b), Change(c, {a: b}, [c, d])),
                                note=b)],
    )
