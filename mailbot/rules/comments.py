"""Comments are not errors: a message in an incident's thread that states no field at all
(a question forwarded from a customer, "thanks", "on it") is kept as a comment, never
rejected and never answered on the list."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.models import Action, Decision, Facts, ParsedMail
from mailbot.rules.enforcement import stated


def states_nothing(mail: ParsedMail) -> bool:
    """No field, no subject shorthand, no invalid value, no key that is nearly a field's:
    the sender did not try to change anything."""
    f = mail.fields
    return not stated(mail) and not f.invalid and not f.misspelled


def check_comment(mail: ParsedMail, facts: Facts, config: Config,
                  decision: Decision | None) -> Decision | None:
    if decision is None or decision.action != Action.UPDATE or not states_nothing(mail):
        return None
    return Decision(Action.COMMENT, reason="comment (no field stated)",
                    incident_id=decision.incident_id)
