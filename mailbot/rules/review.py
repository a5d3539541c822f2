"""Who may record a postmortem review (`[REVIEWED] [INC-n]`) or mark action items done
(`[DONE] [INC-n]` with `Done: A1, A2`).

A review: leadership ([postmortem] leadership) or the incident's commander, once a
postmortem is accepted. Done: the item's owner, the commander or leadership, for items
that exist. Anyone else, or a message that names nothing to do, gets a private note
(`review-refused`, `done-refused`); nothing changes.
"""

from __future__ import annotations

import re

from mailbot.config import Config
from mailbot.models import (Action, Decision, Facts, Incident, ParsedMail, Refusal,
                            address_of)

_DONE_LINE = re.compile(r"(?im)^\s*(?:done|completed|finished)\s*:\s*(?P<v>.+)$")
_LABEL = re.compile(r"(?i)\bA\s*(\d{1,3})\b")


def done_labels(text: str) -> tuple[str, ...]:
    """"Done: A1, A2" (any number of such lines) -> ("A1", "A2")."""
    found: list[str] = []
    for line in _DONE_LINE.finditer(text):
        for n in _LABEL.findall(line.group("v")):
            if f"A{int(n)}" not in found:
                found.append(f"A{int(n)}")
    return tuple(found)


def _leader_or_commander(sender: str, incident: Incident, config: Config) -> bool:
    return bool(sender) and (sender in config.postmortem.leadership
                             or sender == address_of(incident.commander))


def check_review(mail: ParsedMail, facts: Facts, config: Config,
                 decision: Decision | None) -> Decision | None:
    if decision is None or decision.action not in (Action.REVIEWED, Action.DONE):
        return None
    incident = facts.incident
    assert incident is not None
    sender = mail.from_address
    refused = Action.REVIEW_REFUSED if decision.action == Action.REVIEWED else Action.DONE_REFUSED
    if incident.postmortem is None:
        return Decision(refused, reason="no accepted postmortem yet",
                        incident_id=incident.id, details={"problem": Refusal.NO_POSTMORTEM})
    if decision.action == Action.REVIEWED:
        if incident.status == "open":  # reopened since: its review waits for the new end
            return Decision(refused, reason="incident open again", incident_id=incident.id,
                            details={"problem": Refusal.OPEN})
        if incident.postmortem.reviewed_at is not None:
            return Decision(refused, reason="already reviewed", incident_id=incident.id,
                            details={"problem": Refusal.ALREADY_REVIEWED})
        if not _leader_or_commander(sender, incident, config):
            return Decision(refused, reason=f"{sender} is neither leadership nor the commander",
                            incident_id=incident.id, details={"problem": Refusal.NOT_ALLOWED})
        return decision
    labels = done_labels(mail.new_text)
    known = [a for a in incident.postmortem.action_items if a.label in labels]
    unknown = tuple(label for label in labels if incident.postmortem.item(label) is None)
    if not labels or unknown:
        return Decision(refused, reason="no known action item named", incident_id=incident.id,
                        details={"problem": Refusal.UNKNOWN_ITEMS, "labels": labels,
                                 "unknown": unknown})
    allowed = _leader_or_commander(sender, incident, config)
    others = tuple(a.label for a in known if not allowed and address_of(a.owner) != sender)
    if others:
        return Decision(refused, reason=f"{sender} does not own " + ", ".join(others),
                        incident_id=incident.id,
                        details={"problem": Refusal.NOT_ALLOWED, "labels": others})
    return Decision(Action.DONE, reason="action items done: " + ", ".join(labels),
                    incident_id=incident.id, details={"labels": labels})
