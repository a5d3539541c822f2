"""The rules: (ParsedMail, Facts, Config) -> Decision. Pure: no I/O, no clock reads.

The order is the policy, in one table: the first rule that decides wins.

    loops       auto-replies, bounces, our own mail echoed back  -> ignore, silently
    senders     strangers, failed DKIM, mail not via the list   -> ignore, silently
    routing     status request, declaration, postmortem, review, done, follow-up or chatter
    review      only leadership or the commander record a review; owners mark items done
    answers     a reply to a postmortem reminder with its sections is the postmortem
    comments    a follow-up that states no field at all is a comment, not an error
    enforcement a follow-up must carry severity, phase and commander
    stepback    a block pasted back from an older mail is not applied
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from mailbot.config import Config
from mailbot.models import Decision, Incident, ParsedMail
from mailbot.rules import (answers, comments, enforcement, loops, review, routing, senders,
                           stepback)


@dataclass(frozen=True)
class Facts:
    """What the pipeline looked up for the rules, so that they stay pure."""

    incident: Incident | None = None  # the incident the mail is about, if it exists
    incident_id: int | None = None  # the id it refers to (tag or thread), even if unknown
    via_thread: bool = False  # the id came from In-Reply-To/References, not the subject
    in_incident_thread: bool = False  # it replies in an incident's thread (known when the
    # subject names no incident, or carries [DECLARE])
    own_message: bool = False  # its Message-ID is one mailbot generated
    answers: str = ""  # the kind of mailbot mail nearest in its thread ("reminder_postmortem")
    # The incident's severity, phase and commander as the message it replies to showed
    # them (recorded when that message was processed or sent), when known.
    replied_state: Mapping[str, str | None] | None = None


CHAIN = (
    loops.check_loops,
    senders.check_sender,
    routing.route,
    review.check_review,
    answers.answer_reminder,
    comments.check_comment,
    enforcement.enforce,
    stepback.check_step_back,
)


def decide(mail: ParsedMail, facts: Facts, config: Config) -> Decision:
    """Run the chain; `routing.route` always decides, enforcement may overrule it."""
    decision: Decision | None = None
    for rule in CHAIN:
        outcome = rule(mail, facts, config, decision)
        if outcome is not None:
            decision = outcome
            if decision.action == "ignore":
                break
    assert decision is not None
    return decision
