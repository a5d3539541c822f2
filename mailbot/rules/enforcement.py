"""Follow-ups are held to the standard: severity, phase and commander, every time."""

from __future__ import annotations

import datetime as dt
import difflib
import re

from mailbot.config import Config
from mailbot.models import (RECORDED_FIELDS, Action, Decision, Facts, InvalidField,
                            ParsedMail, Problem)
from mailbot.parsing.postmortem import split_sections

REQUIRED = ("severity", "phase", "commander")
# How much older than the resolution a reopening follow-up's Date: may be (clocks differ).
WRITTEN_BEFORE_SLACK = dt.timedelta(minutes=10)


def stated(mail: ParsedMail) -> dict[str, object]:
    """The state a message states: subject shorthand, overridden by body fields."""
    f = mail.fields
    values: dict[str, object] = {}
    if mail.tags.severity:
        values["severity"] = mail.tags.severity
    if mail.tags.phase:
        values["phase"] = mail.tags.phase
    roles = dict(f.roles)
    commander = f.commander or roles.pop("commander", None) or roles.pop("ic", None)
    for name in RECORDED_FIELDS:
        value = getattr(f, name)
        if value is not None and name != "commander":  # the commander comes last, below
            values[name] = value
    if commander:
        values["commander"] = commander
    if roles:
        values["roles"] = roles
    return values


def meant_value(invalid: InvalidField) -> str | None:
    """The valid value a misspelled one is close to ("identifed" -> "identified"), for
    fields whose values are words; None when nothing is close enough to say so."""
    if invalid.field != "phase" or not invalid.valid or invalid.hedged:
        return None  # "SEV9" is close to "SEV1" as text: no guess about severities
    words = re.findall(r"[a-z]+", invalid.value.lower())
    if not words:
        return None
    close = difflib.get_close_matches(words[0], invalid.valid, n=1, cutoff=0.75)
    return close[0] if close else None


def enforce(mail: ParsedMail, facts: Facts, config: Config,
            decision: Decision | None) -> Decision | None:
    if decision is None or decision.action != Action.UPDATE:
        return None
    values = stated(mail)
    invalid = mail.fields.invalid
    # A field written with a value not understood is reported once, as not understood,
    # not a second time as missing.
    missing = tuple(name for name in REQUIRED if name not in values and
                    name not in {i.field for i in invalid})
    if missing or invalid:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if invalid:
            parts.append("invalid " + ", ".join(i.field for i in invalid))
        details: dict[str, object] = {"problem": Problem.INCOMPLETE_FOLLOW_UP}
        if facts.incident is not None and facts.incident.status == "resolved" and \
                len(split_sections(mail.new_text)) >= 3:
            # A reply to the postmortem reminder that is the postmortem, sent without
            # the [POSTMORTEM] tag: say so, instead of only asking for severity & co.
            details["looks_like_postmortem"] = True
        return Decision(Action.REJECT, reason="; ".join(parts), incident_id=decision.incident_id,
                        missing=missing, invalid=invalid, details=details)
    incident = facts.incident
    if incident is not None and incident.status in ("resolved", "closed") and \
            values.get("phase") not in (None, "resolved") and mail.date is not None and \
            incident.resolved_at is not None and \
            mail.date < incident.resolved_at - WRITTEN_BEFORE_SLACK:
        # A mail written before the resolution and delivered after it (a held queue, a
        # laptop that was offline) would reopen the incident with old news. Ask instead.
        return Decision(Action.REJECT, reason="written before the incident was resolved",
                        incident_id=decision.incident_id,
                        details={"problem": Problem.WRITTEN_BEFORE_RESOLUTION})
    return None
