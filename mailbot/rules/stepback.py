"""No silent step back: a follow-up that answers an older mail and repeats the state that
mail showed, word for word, is a block pasted from the past (Reply on the declaration's
ack, two updates later), not news. It is not applied; its sender is told."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.models import Action, Decision, Facts, Incident, ParsedMail, Problem
from mailbot.rules.enforcement import REQUIRED, stated


def state_of(incident: Incident) -> dict[str, str | None]:
    """What an older mail is compared by: the required fields, as mailbot stores them."""
    return {name: getattr(incident, name) for name in REQUIRED}


def _same(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.strip().lower() == b.strip().lower()


def check_step_back(mail: ParsedMail, facts: Facts, config: Config,
                    decision: Decision | None) -> Decision | None:
    if decision is None or decision.action != Action.UPDATE or facts.incident is None:
        return None
    older = facts.replied_state
    if not older:
        return None
    values = stated(mail)
    if not all(_same(values.get(name), older.get(name)) for name in REQUIRED):
        return None  # it says something of its own: applied (a step back is called out)
    current = state_of(facts.incident)
    behind = tuple(name for name in REQUIRED if not _same(older.get(name), current[name]))
    if not behind:
        return None  # the older mail showed what is still true
    return Decision(Action.REJECT, reason="repeats an older state (" + ", ".join(behind) + ")",
                    incident_id=decision.incident_id,
                    details={"problem": Problem.OLDER_STATE, "behind": behind,
                             "older": dict(older)})


def phase_step_back(config: Config, old: str | None, new: str | None) -> bool:
    """An applied move to an earlier phase of the response (reopening aside)."""
    phases = list(config.phases)
    if old not in phases or new not in phases or "resolved" in (old, new):
        return False
    return phases.index(new) < phases.index(old)
