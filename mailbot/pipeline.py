"""The pipeline: spool -> parse -> rules -> incidents -> store -> outbox, in that order.

Takes spool names; hands committed effects to the store and rendered mail to the outbox.
This is the one place that turns a Decision into side effects and mail, and the one place
that catches a message's unexpected error (the message goes to the spool's failed/).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from mailbot import incidents as usecases
from mailbot.clock import Clock
from mailbot.compose import Composer, mail_name
from mailbot.config import Config
from mailbot.durable import fsync_dir, sync_filesystem
from mailbot.models import Change, Decision, Incident, OutgoingMail, ParsedMail
from mailbot.outbox import Outbox
from mailbot.parsing import Language, parse_mail
from mailbot.rules import Facts, decide
from mailbot.rules.declaration import SIX_ITEMS, declaration_gaps
from mailbot.rules.enforcement import stated
from mailbot.rules.senders import unmunge
from mailbot.spool import Spool
from mailbot.store import Store

log = logging.getLogger(__name__)

GROUP_SIZE = 64  # messages per group commit (one hot-file write)


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


class Pipeline:
    """Processes spooled messages one at a time, exactly once in effect."""

    def __init__(
        self,
        config: Config,
        store: Store,
        spool: Spool,
        outbox: Outbox,
        composer: Composer,
        clock: Clock,
        *,
        experts_for: Callable[[Iterable[str]], list[Any]] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.spool = spool
        self.outbox = outbox
        self.composer = composer
        self.clock = clock
        self.language = Language.from_config(config)
        self.experts_for = experts_for or (lambda services: [])
        self.on_change = on_change
        self.archive_dir = config.storage.archive_dir
        self._archive_folders: set[Path] = set()  # made already (a mkdir per message less)
        # Held while one message (or one scheduled job) reads and commits incidents, so
        # the worker and the scheduler never interleave a read-modify-write.
        self.lock = threading.RLock()

    # ------------------------------------------------------------ running

    def recover(self) -> int:
        """Finish commits a crash interrupted. Returns how many were finished."""
        self.store.repair()
        pending = self.store.pending_journal()
        for key, index, outgoing in pending:
            self.finish_commit(key, index, outgoing)
        if pending:
            log.info("recovered %d interrupted commit(s)", len(pending))
        return len(pending)

    def process_pending(self, stop: Any = None) -> int:
        """Process everything waiting in the spool, oldest first.

        Messages go in groups of up to GROUP_SIZE that share one durable write of the hot
        file (group commit): each message is decided and committed in memory in order,
        seeing the ones before it; then the hot file is written once, and only then are
        the index records and outgoing mail written and the spool entries removed. A crash
        before that write leaves every message of the group in the spool, with no effect;
        after it, the journal finishes them at start-up, as for a single commit."""
        count = 0
        names = self.spool.pending()
        for start in range(0, len(names), GROUP_SIZE):
            if stop is not None and stop.is_set():
                break
            with self.lock:
                count += self._process_group(names[start:start + GROUP_SIZE], stop)
        return count

    def _process_group(self, names: list[str], stop: Any = None) -> int:
        committed: list[tuple[str, str, dict[str, dict[str, Any]], Plan]] = []
        duplicates: list[str] = []
        seen = 0
        try:
            with self.store.group():
                folders: set[Path] = set()
                try:
                    for name in names:
                        if stop is not None and stop.is_set():
                            break
                        seen += 1
                        entry = self._commit_one(name, folders)
                        if entry == "duplicate":
                            duplicates.append(name)
                        elif entry is not None:
                            committed.append(entry)
                finally:
                    # The archive links must be durable before the commit that relies on them.
                    for folder in folders:
                        fsync_dir(folder)
        except OSError:
            # Disk trouble: what was written stays; the rest waits in the spool.
            if committed and self.store.is_flushed():
                self._finish_group(committed, duplicates)
            raise
        self._finish_group(committed, duplicates)
        return seen

    def _commit_one(self, name: str, folders: set[Path]) -> Any:
        """Decide one message and commit it in memory (the group writes it)."""
        try:
            spooled = self.spool.read(name)
        except FileNotFoundError:
            return None
        try:
            folders.add(self._archive(spooled.name, spooled.path, spooled.received_at))
            parsed = parse_mail(spooled.raw, self.language)
            if self.store.is_processed(parsed.key):
                log.info("%s <%s> duplicate: already processed", name, parsed.key)
                return "duplicate"
            plan = self.evaluate(parsed, spooled.received_at)
            journaled = self.store.commit(
                parsed.key, incidents=plan.incidents, outgoing=plan.outgoing,
                index=plan.index, next_incident_id=plan.next_incident_id,
                now=spooled.received_at)
        except OSError:
            raise
        except Exception:  # noqa: BLE001 - one bad message must not stop the list
            error = traceback.format_exc()
            log.error("%s failed, moved to failed/: %s", name, error.strip().splitlines()[-1])
            self.spool.fail(name, error)
            return None
        return name, parsed.key, journaled, plan

    def _finish_group(self, committed: list[tuple[str, str, dict[str, dict[str, Any]], Plan]],
                      duplicates: list[str]) -> None:
        """After the group's hot-file write: index records and outgoing mail, one sync,
        then the journal entries and spool entries go."""
        index: dict[str, dict[str, Any]] = {}
        for _, _, journaled, _ in committed:
            for message_id, record in journaled.items():
                index[message_id] = {**index.get(message_id, {}), **record}
        # Written without an fsync each: the journal (already durable in the hot file)
        # holds all of it until one sync of the file system below, and only then may
        # `finish` let the journal entries go.
        self.store.write_index_records(index, synced=False)
        for *_, plan in committed:
            for mail in plan.outgoing:
                self.outbox.enqueue(mail, synced=False)
        if committed:
            sync_filesystem(self.store.dir)
        for _, key, _, _ in committed:
            self.store.finish(key)
        self.spool.done_many([name for name, *_ in committed] + duplicates)
        for *_, plan in committed:
            self._log(plan)
        if self.on_change and any(plan.incidents for *_, plan in committed):
            self.on_change()

    def finish_commit(self, key: str, index: dict[str, dict[str, Any]],
                      outgoing: list[OutgoingMail]) -> None:
        """After `store.commit(key, ...)`: write its index records, queue its mail, and
        let its journal entry go. Idempotent, so recovery may repeat it."""
        self.store.write_index_records(index)
        for mail in outgoing:
            self.outbox.enqueue(mail)
        self.store.finish(key)

    def _archive(self, name: str, path: Path, received: dt.datetime) -> Path:
        """Link the raw message into the monthly archive; returns the folder, whose
        directory the caller syncs once for the whole group."""
        folder = self.archive_dir / received.strftime("%Y-%m")
        if folder not in self._archive_folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._archive_folders.add(folder)
        try:
            os.link(path, folder / name)  # same bytes, no copy; the spool entry goes later
        except FileExistsError:
            pass  # linked before a crash
        return folder

    def _log(self, plan: Plan) -> None:
        d = plan.decision
        ref = f"{self.config.list.incident_prefix}-{d.incident_id}" if d.incident_id else "-"
        what = d.action
        if plan.changes:
            what += " (" + ", ".join(c.field for c in plan.changes) + ")"
        sent = ", ".join(f"{m.kind}->{'/'.join(m.recipients)}" for m in plan.outgoing) or "no mail"
        log.info("<%s> from %s: %s %s: %s; %s", plan.mail.message_id or plan.mail.key,
                 plan.mail.from_address or "?", ref, what, d.reason, sent)
        for note in plan.capped:
            log.warning("<%s> %s", plan.mail.message_id, note)

    # ------------------------------------------------------------ deciding

    def facts_for(self, mail: ParsedMail) -> Facts:
        incident_id = mail.tags.incident_id
        via_thread = False
        if incident_id is None:
            incident_id = self.store.incident_for_thread(mail.thread_ids)
            via_thread = incident_id is not None
        incident = self.store.get(incident_id) if incident_id is not None else None
        return Facts(incident=incident, incident_id=incident_id, via_thread=via_thread,
                     own_message=self.store.is_own_message(mail.message_id))

    def evaluate(self, mail: ParsedMail, received: dt.datetime) -> Plan:
        """Decide and build every effect of `mail`, without writing anything."""
        mail = unmunge(mail, self.config)
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
                    gap_labels=dict(SIX_ITEMS), invalid=plan.mail.fields.invalid)
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
                    gap_labels=dict(SIX_ITEMS), invalid=())
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
            "missing": d.missing,
            "invalid": d.invalid,
            "labels": dict(SIX_ITEMS),
            "original_subject": plan.mail.subject,
            "original_title": plan.mail.tags.title,
        }
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
