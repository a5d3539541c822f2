"""What a message is: a status request, a declaration, a postmortem, a follow-up or chatter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbot.config import Config
from mailbot.models import Decision, ParsedMail

if TYPE_CHECKING:
    from mailbot.rules import Facts


def route(mail: ParsedMail, facts: "Facts", config: Config,
          decision: Decision | None) -> Decision:
    tags = mail.tags
    if tags.status:
        return Decision("status", reason="status request", incident_id=facts.incident_id)
    # A [DECLARE] always opens a new incident, even when its subject names another one
    # ("[DECLARE] Checkout down again, like [INC-1]"). Only a reply in an incident's
    # thread that kept the tag ("Re: [DECLARE] Checkout down") is about that incident.
    if tags.declare and not facts.in_incident_thread:
        return Decision("declare", reason="declaration")
    if tags.other_incidents:
        # "[INC-1] [INC-2] both fixed": a follow-up changes one incident; guessing which
        # (or applying it to both) could be wrong at the worst time. Ask for one each.
        return Decision("reject", reason="names several incidents",
                        incident_id=facts.incident_id,
                        details={"problem": "several-incidents",
                                 "ids": (tags.incident_id, *tags.other_incidents)})
    if facts.incident_id is None:
        if tags.postmortem:
            return Decision("reject", reason="postmortem without [INC-n]",
                            details={"problem": "postmortem-without-incident"})
        return Decision("archive", reason="chatter (no tag, no thread)")
    if facts.incident is None:
        if facts.via_thread:
            return Decision("archive", reason="thread of an unknown incident")
        return Decision("reject", reason=f"no incident {facts.incident_id}",
                        incident_id=facts.incident_id,
                        details={"problem": "unknown-incident"})
    if tags.postmortem:
        if facts.incident.status == "open":
            # An accepted postmortem closes the incident: not while it is still going on.
            return Decision("reject", reason="postmortem for an incident not yet resolved",
                            incident_id=facts.incident_id,
                            details={"problem": "postmortem-before-resolved"})
        return Decision("postmortem", reason="postmortem submission",
                        incident_id=facts.incident_id)
    return Decision("update", reason="follow-up", incident_id=facts.incident_id)
