"""The rules: (ParsedMail, Facts, Config) -> Decision. Pure: no I/O, no clock reads.

The order is the policy, in one table: the first rule that decides wins.

    loops       auto-replies, bounces, our own mail echoed back  -> ignore, silently
    senders     strangers, failed DKIM, mail not via the list   -> ignore, silently
    routing     status request, declaration, postmortem, review, done, follow-up or chatter
    review      only leadership or the commander record a review; owners mark items done
    answers     a reply to a postmortem reminder with its sections is the postmortem
    postmortem  a postmortem is accepted or sent back on its review (sections, items, blame)
    comments    a follow-up that states no field at all is a comment, not an error
    enforcement a follow-up must carry severity, phase and commander
    stepback    a block pasted back from an older mail is not applied
"""

from __future__ import annotations

from mailbot.config import Config
from mailbot.models import Action, Decision, Facts, ParsedMail
from mailbot.rules import (answers, comments, enforcement, loops, postmortem, review, routing,
                           senders, stepback)


CHAIN = (
    loops.check_loops,
    senders.check_sender,
    routing.route,
    review.check_review,
    answers.answer_reminder,
    postmortem.check_postmortem,
    comments.check_comment,
    enforcement.enforce,
    stepback.check_step_back,
)


def decide(mail: ParsedMail, facts: Facts, config: Config) -> Decision:
    """Run the chain; `routing.route` always decides, the rules after it may refine or
    overrule that."""
    decision: Decision | None = None
    for rule in CHAIN:
        outcome = rule(mail, facts, config, decision)
        if outcome is not None:
            decision = outcome
            if decision.action == Action.IGNORE:
                break
    assert decision is not None
    return decision
