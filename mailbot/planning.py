"""Planning: from a parsed message to everything processing it would do, with no side
effects: the Decision of the rules, the changed incidents, the rendered replies (capped
per recipient and hour), and the index records that link the thread to its incident.

Takes a `ParsedMail` and reads the store (incidents, the message index, the send log);
hands back a `Plan` that the pipeline commits. Knows nothing of the spool, files or
sockets; `mailbot check` shows a Plan without committing it, and the scheduled jobs use
`mail_context` and `cap_outgoing` for their own mail.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from mailbot import incidents as usecases
from mailbot.compose import Composer, mail_name
from mailbot.config import Config
from mailbot.models import Change, Decision, Incident, OutgoingMail, ParsedMail
from mailbot.parsing.dates import with_usable_date
from mailbot.rules import Facts, decide
from mailbot.rules.declaration import SIX_ITEMS, declaration_gaps
from mailbot.rules.enforcement import stated
from mailbot.rules.senders import unmunge
from mailbot.store import Store


@dataclass
class Plan:
    """What processing one message would do: computed without side effects."""

    mail: ParsedMail
    decision: Decision
    facts: Facts
    incidents: list[Incident] = field(default_factory=list)
    outgoing: list[OutgoingMail] = field(default_factory=list)
    index: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_incident_id: int | None = None
    changes: tuple[Change, ...] = ()
    capped: list[str] = field(default_factory=list)


class Planner:
    """Decides one message and builds its effects (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        composer: Composer,
        *,
        experts_for: Callable[[Iterable[str]], list[Any]] | None = None,
        unknown_services: Callable[[Iterable[str]], list[str]] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.composer = composer
        self.experts_for = experts_for or (lambda services: [])
        # Named services the directory does not know (a typo, a service not yet listed):
        # said in the mail, so nobody waits for experts who will not be named.
        self.unknown_services = unknown_services or (lambda services: [])

    def facts_for(self, mail: ParsedMail) -> Facts:
        tags = mail.tags
        incident_id = tags.incident_id
        via_thread = False
        thread_incident = None
        # The thread is looked up when the subject names no incident, and for every
        # declaration: whether it replies in an incident's thread decides what it is.
        if incident_id is None or tags.declare:
            thread_incident = self.store.incident_for_thread(mail.thread_ids)
        # A reply that kept "[DECLARE] ... like [INC-1]" belongs to its thread's incident,
        # not to the one its subject mentions.
        if thread_incident is not None and (incident_id is None or tags.declare):
            incident_id = thread_incident
            via_thread = True
        incident = self.store.get(incident_id) if incident_id is not None else None
        return Facts(incident=incident, incident_id=incident_id, via_thread=via_thread,
                     in_incident_thread=thread_incident is not None,
                     own_message=self.store.is_own_message(mail.message_id))

    def evaluate(self, mail: ParsedMail, received: dt.datetime) -> Plan:
        """Decide and build every effect of `mail`, without writing anything."""
        mail = with_usable_date(unmunge(mail, self.config), received)
        facts = self.facts_for(mail)
        decision = decide(mail, facts, self.config)
        plan = Plan(mail=mail, decision=decision, facts=facts)
        plan.index[mail.key] = {"outcome": decision.action}
        handler = getattr(self, "_on_" + decision.action.replace("-", "_"))
        handler(plan, received)
        self._cap(plan, received)
        return plan

    def _link(self, plan: Plan, incident_id: int) -> None:
        plan.index[plan.mail.key]["incident"] = incident_id
        if plan.mail.message_id and plan.mail.message_id != plan.mail.key:
            plan.index[plan.mail.message_id] = {"incident": incident_id}
        for mail in plan.outgoing:
            plan.index[mail.message_id] = {"incident": incident_id, "own": True}

    def mail_context(self, incident: Incident | None) -> dict[str, Any]:
        """The variables every mail about `incident` shares (severities, experts, ...)."""
        prefix = self.config.list.incident_prefix
        return {
            "ref": incident.ref(prefix) if incident else "",
            "prefix": prefix,
            "incident": incident,
            "severities": self.config.severities,
            "list_address": self.config.list.address,
            "tz": self.config.schedule.tz,
            "experts": self.experts_for(incident.services) if incident else [],
            "unknown_services": self.unknown_services(incident.services) if incident else [],
        }

    def _reply(self, plan: Plan, template: str, to: list[str], incident: Incident | None,
               received: dt.datetime, **variables: Any) -> None:
        mail = plan.mail
        refs = list(mail.references)
        if incident and incident.root_message_id and incident.root_message_id not in refs:
            refs.insert(0, incident.root_message_id)
        context = {**self.mail_context(incident), **variables}
        plan.outgoing.append(self.composer.compose(
            template,
            name=mail_name(mail.key, template, len(plan.outgoing)),
            to=to,
            now=received,
            in_reply_to=mail.message_id,
            references=refs,
            **context,
        ))

    def _on_declare(self, plan: Plan, received: dt.datetime) -> None:
        incident_id = self.store.allocate_id()
        incident = usecases.declare(incident_id, plan.mail, received, self.config.phases[0])
        plan.incidents.append(incident)
        plan.next_incident_id = incident_id + 1
        plan.changes = incident.timeline[-1].changes
        plan.decision = Decision("declare", reason=plan.decision.reason, incident_id=incident_id)
        self._reply(plan, "ack", [self.config.list.address], incident, received,
                    declared=True, transition="", changes=(), author=plan.mail.from_address,
                    narrative=plan.mail.narrative,
                    gaps=declaration_gaps(incident, assumed=self._assumed(plan.mail)),
                    gap_labels=dict(SIX_ITEMS), invalid=plan.mail.fields.invalid,
                    misspelled=plan.mail.fields.misspelled)
        self._link(plan, incident_id)

    def _assumed(self, mail: ParsedMail) -> tuple[str, ...]:
        """Items a declaration did not state that mailbot filled with a default."""
        return () if "phase" in stated(mail) else ("phase",)

    def _on_update(self, plan: Plan, received: dt.datetime) -> None:
        assert plan.facts.incident is not None
        incident, changes, transition = usecases.apply_followup(
            plan.facts.incident, plan.mail, received)
        plan.incidents.append(incident)
        plan.changes = changes
        self._reply(plan, "ack", [self.config.list.address], incident, received,
                    declared=False, transition=transition, changes=changes,
                    author=plan.mail.from_address, narrative=plan.mail.narrative, gaps=(),
                    gap_labels=dict(SIX_ITEMS), invalid=(),
                    misspelled=plan.mail.fields.misspelled)
        self._link(plan, incident.id)

    def _on_reject(self, plan: Plan, received: dt.datetime) -> None:
        d = plan.decision
        incident = plan.facts.incident
        if incident is not None:
            incident = usecases.record_rejection(incident, plan.mail, received, d.reason)
            plan.incidents.append(incident)
        prefix = self.config.list.incident_prefix
        variables = {
            "problem": d.details.get("problem", ""),
            "looks_like_postmortem": bool(d.details.get("looks_like_postmortem")),
            "missing": d.missing,
            "invalid": d.invalid,
            "misspelled": plan.mail.fields.misspelled,
            "several": [f"{prefix}-{n}" for n in d.details.get("ids", ())],
            "labels": dict(SIX_ITEMS),
            "original_subject": plan.mail.subject,
            "original_title": plan.mail.tags.title,
            "original_date": plan.mail.date,
        }
        if incident is not None and d.details.get("problem") == "incomplete-follow-up":
            # The block to paste back: the current values with what the message did
            # state put in (under a misspelled key too), so the sender only adds what is
            # missing.
            variables["prefill"] = usecases.apply_followup(
                plan.facts.incident, _with_meant_fields(plan.mail), received)[0]
        context_incident = incident
        self._reply(plan, "rejection", [plan.mail.from_address], context_incident, received,
                    **variables)
        if incident is None and d.incident_id is not None:
            # Keep the subject tag right even though the incident does not exist.
            plan.outgoing[-1] = self.composer.compose(
                "rejection", name=plan.outgoing[-1].name, to=[plan.mail.from_address],
                now=received, in_reply_to=plan.mail.message_id,
                references=list(plan.mail.references),
                **{**self.mail_context(None), "ref": f"{prefix}-{d.incident_id}", **variables})
        if incident is not None:
            self._link(plan, incident.id)

    def _on_status(self, plan: Plan, received: dt.datetime) -> None:
        incident = plan.facts.incident
        prefix = self.config.list.incident_prefix
        missing_ref = ""
        if plan.facts.incident_id is not None and incident is None:
            missing_ref = f"{prefix}-{plan.facts.incident_id}"
        live = sorted(self.store.live_incidents(),
                      key=lambda i: (self._rank(i.severity), i.id))
        self._reply(plan, "status", [plan.mail.from_address], incident, received,
                    incidents=live, missing_ref=missing_ref)

    def _on_postmortem(self, plan: Plan, received: dt.datetime) -> None:
        # Accepted: the incident closes and the list hears it (blame and far-out items
        # are advice in that ack). Rejected: the sender alone hears what is missing.
        from mailbot.models import Postmortem
        from mailbot.rules.postmortem import decide_postmortem, review_postmortem

        incident = plan.facts.incident
        assert incident is not None
        mail = plan.mail
        review = review_postmortem(mail, incident, self.config,
                                   received.astimezone(self.config.schedule.tz).date())
        plan.decision = decide_postmortem(review, incident.id)
        plan.index[mail.key]["outcome"] = plan.decision.action
        variables = {"review": review, "author": mail.from_address,
                     "original_subject": mail.subject,
                     "horizon_days": self.config.postmortem.action_item_horizon_days}
        if review.accepted:
            postmortem = Postmortem(
                accepted_at=received, author=mail.from_address, message_id=mail.message_id,
                text=review.text, sections=review.sections,
                action_items=review.action_items())
            incident = usecases.close_with_postmortem(incident, postmortem, received)
            plan.incidents.append(incident)
            self._reply(plan, "postmortem_ack", [self.config.list.address], incident,
                        received, **variables)
        else:
            incident = usecases.record_rejection(incident, mail, received, review.reason(),
                                                 kind="postmortem-rejected")
            plan.incidents.append(incident)
            self._reply(plan, "postmortem_rejection", [mail.from_address], incident,
                        received, **variables)
        self._link(plan, incident.id)

    def _on_archive(self, plan: Plan, received: dt.datetime) -> None:
        if plan.facts.incident_id is not None and plan.facts.incident is not None:
            self._link(plan, plan.facts.incident_id)

    def _on_ignore(self, plan: Plan, received: dt.datetime) -> None:
        pass

    def _rank(self, severity: str | None) -> int:
        sev = self.config.severity(severity) if severity else None
        return sev.rank if sev else len(self.config.severities) + 1

    def _cap(self, plan: Plan, received: dt.datetime) -> None:
        plan.outgoing, notes = self.cap_outgoing(plan.outgoing, received)
        plan.capped.extend(notes)

    def cap_outgoing(self, outgoing: list[OutgoingMail],
                     now: dt.datetime) -> tuple[list[OutgoingMail], list[str]]:
        """Never more than the configured number of mails to one address per hour.
        Returns the mail that may go and a note for each that may not."""
        since = now - dt.timedelta(hours=1)
        kept, notes = [], []
        counts: dict[str, int] = {}
        for mail in outgoing:
            over = []
            for rcpt in mail.recipients:
                limit = (self.config.policy.max_list_mail_per_hour
                         if rcpt == self.config.list.address
                         else self.config.policy.max_mail_per_address_per_hour)
                n = counts.get(rcpt, 0) + self.store.sent_count(rcpt, since)
                if n >= limit:
                    over.append(rcpt)
                counts[rcpt] = counts.get(rcpt, 0) + 1
            if over:
                notes.append(f"{mail.kind} not sent: hourly cap reached for " + ", ".join(over))
            else:
                kept.append(mail)
        return kept, notes


def _with_meant_fields(mail: ParsedMail) -> ParsedMail:
    """`mail` as if its misspelled keys were the ones they are close to (for a paste-back
    block only); what it stated under a right key wins."""
    meant = mail.fields.as_meant
    if meant is None:
        return mail
    f = mail.fields
    merged = {name: getattr(f, name) if getattr(f, name) is not None else getattr(meant, name)
              for name in ("severity", "phase", "commander", "channel", "summary", "impact",
                           "customer_impact", "services", "postmortem_owner")}
    fields = dataclasses.replace(f, roles={**meant.roles, **f.roles}, **merged)
    return dataclasses.replace(mail, fields=fields)
