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
from typing import Any, Callable, ClassVar, Iterable, Mapping

from mailbot import incidents as usecases
from mailbot import paging
from mailbot.compose import Composer, mail_name
from mailbot.config import Config
from mailbot.models import (RECORDED_FIELDS, Action, Change, Decision, Facts, Incident,
                            OutgoingMail, Page, ParsedMail, Postmortem, Problem, address_of)
from mailbot.parsing.dates import with_usable_date
from mailbot.rules import decide
from mailbot.rules.declaration import SIX_ITEMS, declaration_gaps
from mailbot.rules.enforcement import meant_value, stated
from mailbot.rules.stepback import phase_step_back, state_of
from mailbot.rules.senders import unmunge
from mailbot.services import ServiceDirectory
from mailbot.store import Store
from mailbot.timing import severity_rank, stale_after


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
        experts_for: Callable[[Iterable[str]], Iterable[Any]] | None = None,
        unknown_services: Callable[[Iterable[str]], list[str]] | None = None,
        directory: ServiceDirectory | None = None,
        people: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.directory = directory if directory is not None else ServiceDirectory()
        self.store = store
        self.composer = composer
        self.experts_for = experts_for or (lambda services: [])
        # Named services the directory does not know (a typo, a service not yet listed):
        # said in the mail, so nobody waits for experts who will not be named.
        self.unknown_services = unknown_services or (lambda services: [])
        # Names and handles -> addresses (the experts directory): "owner: @ben" is mailable.
        self.people = dict(people or {})

    def facts_for(self, mail: ParsedMail, received: dt.datetime) -> Facts:
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
        answers, replied_state = self._replied_to(mail, incident_id)
        return Facts(incident=incident, incident_id=incident_id, via_thread=via_thread,
                     in_incident_thread=thread_incident is not None,
                     own_message=self.store.is_own_message(mail.message_id),
                     answers=answers, replied_state=replied_state,
                     today=received.astimezone(self.config.schedule.tz).date(),
                     people=self.people)

    def _replied_to(self, mail: ParsedMail, incident_id: int | None
                    ) -> tuple[str, Mapping[str, Any] | None]:
        """(the kind of mailbot mail nearest in the thread, the incident state the nearest
        message of that incident showed), each when known."""
        answers, state = "", None
        if incident_id is None:
            return answers, state
        for mid in mail.thread_ids:
            record = self.store.message_record(mid)
            if not record or record.get("incident") != incident_id:
                continue
            if state is None and isinstance(record.get("state"), dict):
                state = record["state"]
            if not answers and record.get("own"):
                answers = own_kind(mid)
            if state is not None and answers:
                break
        return answers, state

    def evaluate(self, mail: ParsedMail, received: dt.datetime) -> Plan:
        """Decide and build every effect of `mail`, without writing anything."""
        mail = with_usable_date(unmunge(mail, self.config), received)
        facts = self.facts_for(mail, received)
        decision = decide(mail, facts, self.config)
        plan = Plan(mail=mail, decision=decision, facts=facts)
        plan.index[mail.key] = {"outcome": decision.action.value}  # stored: a plain string
        self._handlers[decision.action](self, plan, received)
        # A message from someone paged for the incident answers the page (no escalation).
        plan.incidents = [paging.record_answer(i, mail.from_address, received, self.directory)
                          if i.pages else i for i in plan.incidents]
        self._cap(plan, received)
        return plan

    def _page(self, plan: Plan, incident: Incident, received: dt.datetime
              ) -> tuple[Incident, list[OutgoingMail], list[Page]]:
        """The pages a `Page:` field asks for: recorded on `incident`, their mails capped
        (paging.py). A page still waiting for an answer is not sent again."""
        targets = plan.mail.fields.page or ()
        if not targets:
            return incident, [], []
        pages: list[Page] = []
        for target in targets:
            for page in paging.resolve_pages(target, self.directory, self.config,
                                             self.composer.may_mail, received):
                if page.sent_to and paging.waiting(incident, target, page.person):
                    continue
                pages.append(page)
        root = incident.root_message_id or plan.mail.message_id
        mails = paging.compose_pages(
            self.composer, self.mail_context(incident), pages, plan.mail.key, received, root,
            escalate_after=paging.escalation_delay(self.config, incident.severity))
        pages, mails = paging.cap_pages(self, pages, mails, received)
        incident = paging.with_pages(incident, pages, received, plan.mail.from_address)
        return incident, mails, pages

    def _link(self, plan: Plan, incident_id: int) -> None:
        # Each message of the thread keeps the state it showed (the incident as it was
        # right after it): a reply that pastes that state back later is recognised.
        shown = next((state_of(i) for i in reversed(plan.incidents) if i.id == incident_id),
                     None)
        extra = {"state": shown} if shown is not None else {}
        plan.index[plan.mail.key].update(incident=incident_id, **extra)
        if plan.mail.message_id and plan.mail.message_id != plan.mail.key:
            plan.index[plan.mail.message_id] = {"incident": incident_id, **extra}
        for mail in plan.outgoing:
            plan.index[mail.message_id] = {"incident": incident_id, "own": True, **extra}

    def mail_context(self, incident: Incident | None) -> dict[str, Any]:
        """The variables every mail about `incident` shares (severities, experts, ...)."""
        prefix = self.config.list.incident_prefix
        return {
            "ref": incident.ref(prefix) if incident else "",
            "page_url": self.page_url(incident),
            "prefix": prefix,
            "incident": incident,
            "severities": self.config.severities,
            "list_address": self.config.list.address,
            "tz": self.config.schedule.tz,
            "experts": self.experts_for(incident.services) if incident else [],
            "unknown_services": self.unknown_services(incident.services) if incident else [],
        }

    def page_url(self, incident: Incident | None) -> str:
        """The incident's page on the published site ("" when `[publish] url` is unset)."""
        if incident is None:
            return ""
        return self.incident_url(incident.ref(self.config.list.incident_prefix))

    def incident_url(self, ref: str) -> str:
        """The page of incident `ref` ("INC-7") on the published site (publish.py writes
        incidents/INC-7.html), or "" when `[publish] url` is unset."""
        base = self.config.publish.url
        return f"{base.rstrip('/')}/incidents/{ref}.html" if base else ""

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
        incident, page_mails, pages = self._page(plan, incident, received)
        plan.incidents.append(incident)
        plan.next_incident_id = incident_id + 1
        plan.changes = incident.timeline[-1].changes
        plan.decision = Decision(Action.DECLARE, reason=plan.decision.reason,
                                 incident_id=incident_id)
        # The block to fill in keeps what a misspelled key or value meant ("sevrity: 3",
        # "Phase: identifed"), so the sender only checks it and sends it back.
        prefill = usecases.apply_followup(incident, _with_meant_fields(plan.mail), received)[0]
        self._reply(plan, "ack", [self.config.list.address], incident, received,
                    declared=True, transition="", changes=(), author=plan.mail.from_address,
                    narrative=plan.mail.narrative, excerpt=(), phase_back=None,
                    gaps=declaration_gaps(incident, assumed=self._assumed(plan.mail)),
                    gap_labels=dict(SIX_ITEMS), invalid=plan.mail.fields.invalid,
                    meant=_meant_values(plan.mail), prefill=prefill,
                    misspelled=plan.mail.fields.misspelled, pages=pages)
        plan.outgoing.extend(page_mails)
        self._customer_statement(plan, None, incident, received)
        self._link(plan, incident_id)

    def _customer_statement(self, plan: Plan, before: Incident | None, incident: Incident,
                            received: dt.datetime) -> None:
        """A draft customer update to the liaison alone, for a customer-affecting incident:
        at its declaration, and when its severity or phase changes or a liaison is named."""
        if not self.config.oncall.customer_statement or not incident.customer_impact:
            return
        addresses = [a for a in (address_of(p) for p in incident.liaisons) if a]
        if not addresses:
            return
        if before is None:
            reason = "the incident was declared"
        else:
            was = [f for f in ("severity", "phase") if getattr(before, f) != getattr(incident, f)]
            if was:
                reason = " and ".join(f"its {f} is now {getattr(incident, f)}" for f in was)
            elif not before.customer_impact:
                reason = "it now affects customers"
            elif set(addresses) - {address_of(p) for p in before.liaisons}:
                reason = "you were named liaison"
            else:
                return
        self._reply(plan, "customer_statement", addresses, incident, received, reason=reason,
                    next_update=received + stale_after(self.config, incident.severity))

    def _assumed(self, mail: ParsedMail) -> tuple[str, ...]:
        """Items a declaration did not state that mailbot filled with a default."""
        return () if "phase" in stated(mail) else ("phase",)

    def _on_update(self, plan: Plan, received: dt.datetime) -> None:
        assert plan.facts.incident is not None
        before = plan.facts.incident
        incident, changes, transition = usecases.apply_followup(before, plan.mail, received)
        incident, page_mails, pages = self._page(plan, incident, received)
        plan.incidents.append(incident)
        plan.changes = changes
        phase_back = None
        if phase_step_back(self.config, before.phase, incident.phase):
            phase_back = (before.phase, incident.phase)
        self._reply(plan, "ack", [self.config.list.address], incident, received,
                    declared=False, transition=transition, changes=changes,
                    author=plan.mail.from_address, narrative=plan.mail.narrative,
                    excerpt=excerpt(plan.mail.narrative, _ACK_EXCERPT_LINES),
                    phase_back=phase_back, gaps=(), gap_labels=dict(SIX_ITEMS), invalid=(),
                    meant={}, prefill=None, misspelled=plan.mail.fields.misspelled,
                    pages=pages)
        plan.outgoing.extend(page_mails)
        self._customer_statement(plan, before, incident, received)
        if transition == "reopened":
            self._cancel_review(plan, incident, received)
        self._link(plan, incident.id)

    def _cancel_review(self, plan: Plan, incident: Incident, received: dt.datetime) -> None:
        """A reopened incident's review is off: its invitation is cancelled (METHOD:CANCEL,
        same UID), so calendars drop it; resolving again sends a new one."""
        from mailbot.review import review_cancellation

        cancelled = review_cancellation(self.config, incident, received)
        if cancelled is None:
            return
        invite, ics = cancelled
        incident.review_invite = invite
        ref = incident.ref(self.config.list.incident_prefix)
        self._reply(plan, "review_cancel", [invite["organizer"], *invite["attendees"]],
                    incident, received, review_start=dt.datetime.fromisoformat(invite["start"]),
                    attachments=[(f"review-{ref}.ics",
                                  "text/calendar; method=CANCEL; charset=UTF-8", ics)])

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
            "meant": _meant_values(plan.mail),
            "behind": d.details.get("behind", ()),
            "older": d.details.get("older", {}),
            "misspelled": plan.mail.fields.misspelled,
            "blanked": dict(plan.mail.fields.blanked),
            "several": [f"{prefix}-{n}" for n in d.details.get("ids", ())],
            "labels": dict(SIX_ITEMS),
            "original_subject": plan.mail.subject,
            "original_title": plan.mail.tags.title,
            "original_date": plan.mail.date,
        }
        if incident is not None and d.details.get("problem") == Problem.INCOMPLETE_FOLLOW_UP:
            # The block to paste back: the current values with what the message did
            # state put in (under a misspelled key or value too), so the sender only adds
            # what is missing.
            assert plan.facts.incident is not None  # `incident` was made from it
            variables["prefill"] = usecases.apply_followup(
                plan.facts.incident, _with_meant_fields(plan.mail), received)[0]
        elif incident is not None and d.details.get("problem") == Problem.OLDER_STATE:
            # Today's values, with whatever else the message said (a new liaison): only
            # the pasted severity, phase and commander are left out.
            assert plan.facts.incident is not None  # `incident` was made from it
            variables["prefill"] = usecases.apply_followup(
                plan.facts.incident, _without(plan.mail, d.details.get("behind", ())),
                received)[0]
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
                      key=lambda i: (severity_rank(self.config, i.severity), i.id))
        self._reply(plan, "status", [plan.mail.from_address], incident, received,
                    incidents=live, missing_ref=missing_ref)

    def _postmortem_variables(self, plan: Plan) -> dict[str, Any]:
        return {"review": plan.decision.details["review"], "author": plan.mail.from_address,
                "original_subject": plan.mail.subject,
                "horizon_days": self.config.postmortem.action_item_horizon_days,
                "leadership": self.config.postmortem.leadership}

    def _on_postmortem_accept(self, plan: Plan, received: dt.datetime) -> None:
        # The incident awaits its review and the list hears it, without a word of blame.
        incident = plan.facts.incident
        assert incident is not None
        mail = plan.mail
        variables = self._postmortem_variables(plan)
        review = variables["review"]
        postmortem = Postmortem(
            accepted_at=received, author=mail.from_address, message_id=mail.message_id,
            text=review.text, sections=review.sections,
            action_items=review.action_items(), quarterly=review.quarterly_items(),
            headings=review.headings)
        incident = usecases.accept_postmortem(incident, postmortem, received)
        plan.incidents.append(incident)
        self._reply(plan, "postmortem_ack", [self.config.list.address], incident,
                    received, postmortem=postmortem, **variables)
        if review.blame:  # [postmortem] blame_is_advice: still never to the list
            self._reply(plan, "postmortem_blame_note", [mail.from_address], incident,
                        received, **variables)
        self._link(plan, incident.id)

    def _on_postmortem_reject(self, plan: Plan, received: dt.datetime) -> None:
        # The author alone hears what is missing or blames someone.
        incident = plan.facts.incident
        assert incident is not None
        variables = self._postmortem_variables(plan)
        incident = usecases.record_rejection(incident, plan.mail, received,
                                             variables["review"].reason(),
                                             kind="postmortem-rejected")
        plan.incidents.append(incident)
        self._reply(plan, "postmortem_rejection", [plan.mail.from_address], incident,
                    received, **variables)
        self._link(plan, incident.id)

    def _on_reviewed(self, plan: Plan, received: dt.datetime) -> None:
        assert plan.facts.incident is not None
        incident = usecases.record_review(plan.facts.incident, plan.mail, received)
        plan.incidents.append(incident)
        self._reply(plan, "review_ack", [self.config.list.address], incident, received,
                    reviewer=plan.mail.from_address)
        self._link(plan, incident.id)

    def _on_done(self, plan: Plan, received: dt.datetime) -> None:
        assert plan.facts.incident is not None
        labels = tuple(plan.decision.details.get("labels", ()))
        incident = usecases.mark_done(plan.facts.incident, labels, plan.mail, received)
        plan.incidents.append(incident)
        self._reply(plan, "done_ack", [self.config.list.address], incident, received,
                    labels=labels, author=plan.mail.from_address,
                    today=received.astimezone(self.config.schedule.tz).date())
        self._link(plan, incident.id)

    def _on_review_refused(self, plan: Plan, received: dt.datetime) -> None:
        self._refused(plan, received, "review_refused")

    def _on_done_refused(self, plan: Plan, received: dt.datetime) -> None:
        self._refused(plan, received, "done_refused")

    def _refused(self, plan: Plan, received: dt.datetime, template: str) -> None:
        # Only the sender hears it: nothing changed, so the list has nothing to read.
        incident = plan.facts.incident
        assert incident is not None
        incident = usecases.record_rejection(incident, plan.mail, received,
                                             plan.decision.reason, kind=template.replace("_", "-"))
        plan.incidents.append(incident)
        self._reply(plan, template, [plan.mail.from_address], incident, received,
                    problem=plan.decision.details.get("problem", ""),
                    labels=plan.decision.details.get("labels", ()),
                    unknown=plan.decision.details.get("unknown", ()),
                    leadership=self.config.postmortem.leadership)
        self._link(plan, incident.id)

    def _on_comment(self, plan: Plan, received: dt.datetime) -> None:
        # Kept with its text; the list already has it, so only its sender hears from
        # mailbot, once per incident, how an update is written.
        assert plan.facts.incident is not None
        sender = plan.mail.from_address
        # A pager (an SMS gateway answering "ack") is not taught the email language: the
        # note would cost a phone several text messages.
        first = (bool(sender) and sender not in plan.facts.incident.comment_noted
                 and sender.lower() not in {p.sent_to.lower() for p in plan.facts.incident.pages
                                            if p.sent_to and p.sent_to != p.person})
        incident = usecases.record_comment(plan.facts.incident, plan.mail, received,
                                           noted=first)
        # "Page: db" alone is a comment (it changes no field) that still pages.
        incident, page_mails, _ = self._page(plan, incident, received)
        plan.incidents.append(incident)
        if first:
            self._reply(plan, "comment_note", [sender], incident, received)
        plan.outgoing.extend(page_mails)
        self._link(plan, incident.id)

    def _on_archive(self, plan: Plan, received: dt.datetime) -> None:
        if plan.facts.incident_id is not None and plan.facts.incident is not None:
            self._link(plan, plan.facts.incident_id)

    def _on_ignore(self, plan: Plan, received: dt.datetime) -> None:
        pass

    # What each final action does (Action.POSTMORTEM never is one: the postmortem rule
    # always decides it). A test checks that every other action has its handler.
    _handlers: ClassVar[Mapping[Action, Callable[[Planner, Plan, dt.datetime], None]]] = {
        Action.IGNORE: _on_ignore,
        Action.ARCHIVE: _on_archive,
        Action.STATUS: _on_status,
        Action.DECLARE: _on_declare,
        Action.UPDATE: _on_update,
        Action.COMMENT: _on_comment,
        Action.REJECT: _on_reject,
        Action.POSTMORTEM_ACCEPT: _on_postmortem_accept,
        Action.POSTMORTEM_REJECT: _on_postmortem_reject,
        Action.REVIEWED: _on_reviewed,
        Action.REVIEW_REFUSED: _on_review_refused,
        Action.DONE: _on_done,
        Action.DONE_REFUSED: _on_done_refused,
    }

    def _cap(self, plan: Plan, received: dt.datetime) -> None:
        plan.outgoing, notes = self.cap_outgoing(plan.outgoing, received)
        plan.capped.extend(notes)

    def cap_outgoing(self, outgoing: list[OutgoingMail],
                     now: dt.datetime) -> tuple[list[OutgoingMail], list[str]]:
        """Never more than the configured number of mails to one address per hour, and
        nothing without a recipient. Returns the mail that may go and a note for each that
        may not."""
        since = now - dt.timedelta(hours=1)
        kept, notes = [], []
        counts: dict[str, int] = {}
        for mail in outgoing:
            if not mail.recipients:  # everyone named was outside what mailbot may mail
                notes.append(f"{mail.kind} not sent: no recipient mailbot may write to")
                continue
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


_ACK_EXCERPT_LINES = 5  # of the sender's words in a routine ack; the rest is in the thread


def own_kind(message_id: str) -> str:
    """The kind of mail mailbot wrote under `message_id` (see Composer.message_id_for:
    "mailbot.<cause>.<kind>.<n>.<instance>@<domain>"), or ""."""
    parts = message_id.split("@", 1)[0].split(".")
    return parts[2] if len(parts) >= 4 and parts[0] == "mailbot" else ""


def excerpt(text: str, limit: int) -> tuple[tuple[str, ...], bool]:
    """The first `limit` non-blank lines of `text`, and whether there was more."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return tuple(lines[:limit]), len(lines) > limit


def _meant_values(mail: ParsedMail) -> dict[str, str]:
    """field -> the valid value a misspelled one is close to ("identifed" -> "identified")."""
    meant = {}
    for invalid in mail.fields.invalid:
        value = meant_value(invalid)
        if value is not None:
            meant[invalid.field] = value
    return meant


def _with_meant_fields(mail: ParsedMail) -> ParsedMail:
    """`mail` as if its misspelled keys were the ones they are close to, and its misspelled
    values the ones they are close to (for a block to fill in only); what it stated under
    a right key wins."""
    f = mail.fields
    merged: dict[str, Any] = {name: getattr(f, name) for name in RECORDED_FIELDS}
    roles = dict(f.roles)
    meant = f.as_meant
    if meant is not None:
        for name in RECORDED_FIELDS:
            if merged[name] is None:
                merged[name] = getattr(meant, name)
        roles = {**meant.roles, **roles}
    for name, value in _meant_values(mail).items():
        if merged.get(name) is None:
            merged[name] = value
    fields = dataclasses.replace(f, roles=roles, **merged)
    return dataclasses.replace(mail, fields=fields)


def _without(mail: ParsedMail, names: Iterable[str]) -> ParsedMail:
    """`mail` as if it had not stated `names` (in its body or its subject)."""
    names = set(names)
    f = mail.fields
    cleared: dict[str, Any] = {name: None for name in names if name in RECORDED_FIELDS}
    roles = {r: p for r, p in f.roles.items()
             if not ("commander" in names and r in ("commander", "ic"))}
    unstated: dict[str, Any] = {n: None for n in ("severity", "phase") if n in names}
    tags = dataclasses.replace(mail.tags, **unstated)
    return dataclasses.replace(mail, tags=tags,
                               fields=dataclasses.replace(f, roles=roles, **cleared))
