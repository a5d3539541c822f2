"""A good declaration says what, how bad, how far along, who leads, where, who else, and
whether customers are affected; list what this one left out (it still opens)."""

from __future__ import annotations

from mailbot.models import Incident

# (item, how people call it) in the order the acknowledgement lists them. The name is
# older than the seventh item (customer impact: it decides whether a liaison is needed).
SIX_ITEMS = (
    ("summary", "what the issue is (Summary:)"),
    ("severity", "its severity (Severity:)"),
    ("phase", "how far along the response is (Phase:)"),
    ("commander", "who manages it (Commander:)"),
    ("channel", "where the team coordinates (Channel:)"),
    ("roles", "who else is involved and as what (Roles:)"),
    ("customer_impact", "whether customers are affected (Customer-Impact: yes or no)"),
)


def declaration_gaps(incident: Incident, assumed: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The items of a good declaration that the incident still lacks; `assumed` items were
    filled with a default (the first phase) and still count as not said."""
    gaps = []
    for item, _ in SIX_ITEMS:
        if item in assumed:
            gaps.append(item)
            continue
        value = getattr(incident, item)
        if item == "summary":
            value = value or incident.title  # a telling subject says what it is
        if value in (None, "", {}, ()):
            gaps.append(item)
    return tuple(gaps)
