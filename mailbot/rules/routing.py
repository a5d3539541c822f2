"""What a message is: a status request, a declaration, a postmortem, a follow-up or chatter."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.models import Action, Decision, Facts, ParsedMail, Problem
from mailbot.parsing.tags import mentioned_incidents
from mailbot.rules.review import done_labels


def route(mail: ParsedMail, facts: Facts, config: Config,
          decision: Decision | None) -> Decision:
    tags = mail.tags
    if tags.status:
        return Decision(Action.STATUS, reason="status request", incident_id=facts.incident_id)
    # A [DECLARE] always opens a new incident, even when its subject names another one
    # ("[DECLARE] Checkout down again, like [INC-1]") or it was sent with In-Reply-To
    # set. Only a reply ("Re:") in an incident's thread that kept the tag ("Re: [DECLARE]
    # Checkout down") is about that incident.
    if tags.declare and not (tags.reply and facts.in_incident_thread):
        return Decision(Action.DECLARE, reason="declaration")
    if tags.other_incidents and len(_targets(tags, facts, config)) > 1:
        # "[INC-1] [INC-2] both fixed": a follow-up changes one incident; guessing which
        # (or applying it to both) could be wrong at the worst time. Ask for one each.
        return Decision(Action.REJECT, reason="names several incidents",
                        incident_id=facts.incident_id,
                        details={"problem": Problem.SEVERAL_INCIDENTS,
                                 "ids": (tags.incident_id, *tags.other_incidents)})
    if facts.incident_id is None:
        if tags.postmortem:
            return Decision(Action.REJECT, reason="postmortem without [INC-n]",
                            details={"problem": Problem.POSTMORTEM_WITHOUT_INCIDENT})
        return Decision(Action.ARCHIVE, reason="chatter (no tag, no thread)")
    if facts.incident is None:
        if facts.via_thread:
            return Decision(Action.ARCHIVE, reason="thread of an unknown incident")
        return Decision(Action.REJECT, reason=f"no incident {facts.incident_id}",
                        incident_id=facts.incident_id,
                        details={"problem": Problem.UNKNOWN_INCIDENT})
    if tags.reviewed:
        return Decision(Action.REVIEWED, reason="postmortem review recorded",
                        incident_id=facts.incident_id)
    if tags.done or (facts.answers == "reminder_action_item" and done_labels(mail.new_text)):
        # A reply to an item's reminder saying "Done: A1" needs no [DONE] tag.
        return Decision(Action.DONE, reason="action items done", incident_id=facts.incident_id)
    if tags.postmortem:
        if facts.incident.status == "open":
            # An accepted postmortem closes the incident: not while it is still going on.
            return Decision(Action.REJECT, reason="postmortem for an incident not yet resolved",
                            incident_id=facts.incident_id,
                            details={"problem": Problem.POSTMORTEM_BEFORE_RESOLVED})
        return Decision(Action.POSTMORTEM, reason="postmortem submission",
                        incident_id=facts.incident_id)
    return Decision(Action.UPDATE, reason="follow-up", incident_id=facts.incident_id)


def _targets(tags, facts: Facts, config: Config) -> set[int]:
    """The incidents a subject with several [INC-n] tags is about: all of them, except
    those its incident's own title mentions ("[INC-2] Checkout down again, like [INC-1]"
    is about INC-2 only)."""
    named = {n for n in (tags.incident_id, *tags.other_incidents) if n is not None}
    title = facts.incident.title if facts.incident is not None else ""
    mentioned = mentioned_incidents(title, config.list.incident_prefix)
    return (named - mentioned) or named
