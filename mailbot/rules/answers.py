"""Replies in mailbot's own threads mean what they answer: a reply to a postmortem
reminder that has postmortem sections in it is the postmortem, tag or no tag. So is a
reply about a resolved incident that is plainly a postmortem (three of its sections or
more) whose thread link was lost ("Re: [INC-1] Postmortem due: ..." from a phone)."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.models import Action, Decision, Facts, ParsedMail
from mailbot.parsing.postmortem import split_sections
from mailbot.rules.enforcement import stated
from mailbot.rules.postmortem import REQUIRED

POSTMORTEM_REMINDER = "reminder_postmortem"
LOOKS_LIKE_POSTMORTEM = 3  # required sections found, outside a reminder's thread


def answer_reminder(mail: ParsedMail, facts: Facts, config: Config,
                    decision: Decision | None) -> Decision | None:
    if decision is None or decision.action != Action.UPDATE or facts.incident is None:
        return None
    # A phase stated is an update (reopening it, say), whatever else the mail holds.
    if facts.incident.status == "open" or "phase" in stated(mail):
        return None
    texts = (mail.new_text, *(a.text for a in mail.attachments if a.text))
    found = max(len(set(split_sections(t)) & set(REQUIRED)) for t in texts)
    # "Impact:" is a field too; a reply that only says "on Friday" is no postmortem: both
    # stay a comment or an update.
    telling = max(len(set(split_sections(t)) & set(REQUIRED) - {"impact"}) for t in texts)
    if facts.answers == POSTMORTEM_REMINDER and telling:
        return Decision(Action.POSTMORTEM, reason="reply to the postmortem reminder",
                        incident_id=decision.incident_id)
    if found >= LOOKS_LIKE_POSTMORTEM:
        return Decision(Action.POSTMORTEM, reason="a postmortem (its sections) in the thread",
                        incident_id=decision.incident_id)
    return None
