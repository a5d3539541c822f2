"""Mail a scheduled job writes about an incident (reminders.py, actions.py): to whom it
may go, threaded under the incident's declaration, within the hourly per-address cap, and
committed with the incident's new state."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, Iterable

from mailbot.compose import mail_name
from mailbot.effects import commit_effects
from mailbot.models import Incident, OutgoingMail, address_of

if TYPE_CHECKING:
    from mailbot.runtime import Runtime

log = logging.getLogger(__name__)


def addresses(people: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(a for a in map(address_of, people) if a))


def mailable(rt: "Runtime", incident: Incident, role: str,
             people: Iterable[str | None]) -> list[str]:
    """The addresses of `people` that mailbot may write to (rules/recipients.py); the
    others stay recorded on the incident and are logged here, never mailed."""
    named = addresses(people)
    kept = [a for a in named if rt.composer.may_mail(a)]
    withheld = [a for a in named if a not in kept]
    if withheld:
        log.warning("%s: %s %s not mailed: not the list nor an allowed address",
                    incident.ref(rt.config.list.incident_prefix), role, ", ".join(withheld))
    return kept


def within_cap(rt: "Runtime", mail: OutgoingMail, now: dt.datetime) -> bool:
    """The pipeline's hourly per-address cap applies to scheduled mail too."""
    kept, notes = rt.planner.cap_outgoing([mail], now)
    for note in notes:
        log.warning("%s", note)
    return bool(kept)


def compose_about(rt: "Runtime", incident: Incident, template: str, key: str,
                  **variables: Any) -> OutgoingMail:
    """A scheduled mail about `incident`, threaded under its declaration."""
    root = incident.root_message_id
    return rt.composer.compose(
        template, name=mail_name(key, template), in_reply_to=root,
        references=[root] if root else [], auto_submitted="auto-generated",
        **rt.planner.mail_context(incident), **variables)


def commit_about(rt: "Runtime", key: str, incident: Incident, mail: OutgoingMail,
                 now: dt.datetime) -> None:
    """Commit `incident`'s new state with `mail` under the job's `key` (effects.py)."""
    index = {mail.message_id: {"incident": incident.id, "own": True}}
    commit_effects(rt.store, rt.outbox, key, incidents=[incident], outgoing=[mail],
                   index=index, now=now)
