"""Paging by email: `Page: db` or `Page: dana@example.com` -> a short page to the person
on call (their pager address, else their normal one), and escalation when nobody answers.

Takes the incident a declaration, an accepted follow-up or a comment is about, and the
directory; hands back the incident with its pages recorded (`Incident.pages`, a timeline
entry) and the page mails, which the planner caps and commits with the message. The
reminders' sweep (every minute) escalates through `escalate_pages`, committing its pages
keyed by
`job:page-escalation:<id>:<target>:<level>` so a repeated sweep sends nothing twice.

Who may be paged: people in the directory (to their pager address) and allowed senders
(to their address); anyone else is recorded as not paged. Whoever was paged for an
incident may write to its thread as if allowed (rules/senders.py). A page is answered
when anybody of the paged side (a person paged for that target, or an expert of the
paged service) writes to the incident after it; unanswered after [oncall]
escalate_after_minutes, the next member of the rotation is paged, then the owners.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable

from mailbot.compose import mail_name
from mailbot.config import Config
from mailbot.effects import commit_effects
from mailbot.models import Incident, OutgoingMail, Page, TimelineEntry, address_of
from mailbot.rules.senders import is_allowed
from mailbot.services import Expert, ServiceDirectory

if TYPE_CHECKING:
    from mailbot.runtime import Runtime

log = logging.getLogger(__name__)

FIRST, NEXT_IN_TURN, OWNER = 0, 1, 2


def resolve_pages(target: str, directory: ServiceDirectory, config: Config,
                  may_mail: Callable[[str], bool], at: dt.datetime) -> list[Page]:
    """The pages `Page: <target>` asks for at `at`; a page that cannot go carries a note
    and no `sent_to`. Pure: nothing is sent."""
    address = address_of(target)
    if address:
        expert = directory.expert_by_address(address)
        if expert is not None:
            return [_page_for(target, expert, "", FIRST, at, may_mail)]
        if is_allowed(address, config):
            return [_page_for(target, Expert(address, address, ""), "", FIRST, at, may_mail)]
        return [Page(target, address, address, at,
                     note="not in the experts directory nor an allowed sender")]
    service = directory.get(target)
    if service is None:
        return [Page(target, "", "", at, note="no such service in the experts directory")]
    people = directory.on_call_people(service.name, at)
    level = FIRST
    if not people:
        people, level = service.owners, OWNER
    if not people:
        return [Page(target, "", "", at, service=service.name,
                     note="nobody on call and no owner listed")]
    return [_page_for(target, e, service.name, level, at, may_mail) for e in people]


def _page_for(target: str, expert: Expert, service: str, level: int, at: dt.datetime,
              may_mail: Callable[[str], bool]) -> Page:
    to = expert.pager or expert.address
    if not may_mail(to):
        return Page(target, expert.address, expert.name, at, service=service, level=level,
                    note=f"{to} is not an address mailbot may write to")
    return Page(target, expert.address, expert.name, at, service=service, sent_to=to,
                level=level)


def waiting(incident: Incident, target: str, person: str) -> Page | None:
    """An unanswered page already sent to `person` for `target` (a block pasted again
    with its `Page:` line must not page them twice)."""
    for page in incident.pages:
        if (page.target.lower() == target.lower() and page.person == person
                and page.sent_to and page.answered_at is None):
            return page
    return None


def paged_side(incident: Incident, target: str, directory: ServiceDirectory) -> set[str]:
    """Whose message answers the pages for `target`: everyone paged for it (at either
    address), and the experts of the paged service."""
    side = {a for p in incident.pages if p.target.lower() == target.lower()
            for a in (p.person, p.sent_to) if a}
    service = directory.get(target) if not address_of(target) else None
    if service is not None:
        side.update(e.address for e in service.experts)
    return side


def record_answer(incident: Incident, sender: str, at: dt.datetime,
                  directory: ServiceDirectory) -> Incident:
    """`incident` with the pages `sender` answers (by writing to it at `at`) marked."""
    if not incident.pages or not sender:
        return incident
    # Strictly after: whoever wrote the `Page:` line does not answer their own page.
    targets = {p.target for p in incident.pages if p.answered_at is None and p.at < at}
    answered = {t for t in targets if sender in paged_side(incident, t, directory)}
    if not answered:
        return incident
    pages = tuple(dataclasses.replace(p, answered_at=at)
                  if p.target in answered and p.answered_at is None else p
                  for p in incident.pages)
    return dataclasses.replace(incident, pages=pages)


def with_pages(incident: Incident, pages: Iterable[Page], at: dt.datetime,
               author: str) -> Incident:
    """`incident` with `pages` added and one timeline entry saying who was paged."""
    pages = list(pages)
    if not pages:
        return incident
    notes = []
    for p in pages:
        who = p.name if p.name == p.person or not p.person else f"{p.name} <{p.person}>"
        what = f"{p.service} " if p.service else ""
        label = ("", " (next in turn)", " (owner)")[p.level]
        notes.append(f"paged {what}{who or p.target}{label} at {p.sent_to}"
                     if p.sent_to and not p.note
                     else f"not paged: {who or p.target}{label}: {p.note}")
    timeline = [*incident.timeline,
                TimelineEntry(kind="paged", at=at, author=author, note="; ".join(notes))]
    return dataclasses.replace(incident, pages=(*incident.pages, *pages), timeline=timeline)


def compose_pages(composer: Any, context: dict[str, Any], pages: Iterable[Page],
                  cause: str, now: dt.datetime, root: str, *,
                  escalate_after: dt.timedelta | None,
                  escalated_from: Iterable[Page] = ()) -> list[OutgoingMail]:
    """One short page mail per page that can go, threaded under the declaration."""
    mails = []
    escalated_from = tuple(escalated_from)
    for n, page in enumerate(p for p in pages if p.sent_to):
        mails.append(composer.compose(
            "page", name=mail_name(cause, "page", n), to=[page.sent_to], now=now,
            in_reply_to=root, references=[root] if root else [],
            auto_submitted="auto-generated", page=page, escalated_from=escalated_from,
            escalate_after=escalate_after, **context))
    return mails


def cap_pages(planner: Any, pages: list[Page], mails: list[OutgoingMail], now: dt.datetime
              ) -> tuple[list[Page], list[OutgoingMail]]:
    """The per-address hourly cap applied to page mails; a page held back by it says so."""
    kept, notes = planner.cap_outgoing(mails, now)
    for note in notes:
        log.warning("%s", note)
    sent_to = {a for m in kept for a in m.recipients}
    pages = [p if not p.sent_to or p.sent_to in sent_to
             else dataclasses.replace(p, note="hourly cap reached: not sent") for p in pages]
    return pages, kept


# ---------------------------------------------------------------- escalation


def escalation_delay(config: Config, severity: str | None) -> dt.timedelta | None:
    """How long a page waits for an answer before the next one, or None: no escalation."""
    minutes = config.oncall.escalate_after_minutes
    if minutes <= 0:
        return None
    if severity and severity not in config.oncall.escalate_severities:
        return None
    return dt.timedelta(minutes=minutes)


def next_pages(incident: Incident, target: str, directory: ServiceDirectory,
               config: Config, may_mail: Callable[[str], bool],
               now: dt.datetime) -> list[Page]:
    """Who to page when the pages for `target` went unanswered: the next member of the
    rotation after the one paged, then the service's owners; nobody after them, and
    nobody for a page to a person."""
    group = [p for p in incident.pages if p.target.lower() == target.lower()]
    last = max(p.level for p in group)
    service = directory.get(group[0].service) if group[0].service else None
    if service is None or last >= OWNER:
        return []
    paged = {p.person for p in group}
    if last == FIRST and service.rotation is not None:
        first = next((p.person for p in group if p.level == FIRST and p.person), "")
        person = service.rotation.next_member(first) if first else None
        expert = directory.expert_by_address(person) if person else None
        if expert is not None and expert.address not in paged:
            return [_page_for(target, expert, service.name, NEXT_IN_TURN, now, may_mail)]
    owners = [e for e in service.owners if e.address not in paged]
    return [_page_for(target, e, service.name, OWNER, now, may_mail) for e in owners]


def escalate_pages(rt: "Runtime", incident: Incident, now: dt.datetime) -> int:
    """Page the next people for each unanswered page of `incident` whose wait is over
    (called by the reminders' sweep). Returns the pages sent."""
    delay = escalation_delay(rt.config, incident.severity)
    if incident.status != "open" or not incident.pages or delay is None:
        return 0
    sent = 0
    for target in dict.fromkeys(p.target.lower() for p in incident.pages):
        group = [p for p in incident.pages if p.target.lower() == target]
        if any(p.answered_at for p in group):
            continue
        latest = max(group, key=lambda p: (p.level, p.at))
        if now < latest.at + delay:
            continue
        key = f"job:page-escalation:{incident.id}:{target}:{latest.level}"
        if rt.store.is_processed(key):
            continue
        sent += _escalate(rt, incident, group[0].target, key, now)
        incident = rt.store.get(incident.id) or incident
    return sent


def _escalate(rt: "Runtime", incident: Incident, target: str, key: str,
              now: dt.datetime) -> int:
    config = rt.config
    pages = next_pages(incident, target, rt.directory, config, rt.composer.may_mail, now)
    if not pages:
        # Nobody left to page: recorded once (the key), so the sweep stops asking.
        commit_effects(rt.store, rt.outbox, key, now=now)
        return 0
    group = [p for p in incident.pages if p.target.lower() == target.lower()]
    context = rt.planner.mail_context(incident)
    mails = compose_pages(rt.composer, context, pages, key, now, incident.root_message_id,
                          escalate_after=escalation_delay(config, incident.severity),
                          escalated_from=group)
    pages, kept = cap_pages(rt.planner, pages, mails, now)
    updated = with_pages(incident, pages, now, config.list.bot_address)
    index = {m.message_id: {"incident": incident.id, "own": True} for m in kept}
    commit_effects(rt.store, rt.outbox, key, incidents=[updated], outgoing=kept, index=index,
                   now=now)
    log.info("%s: page for %s unanswered; paged %s", incident.ref(config.list.incident_prefix),
             target, ", ".join(p.sent_to or f"nobody ({p.note})" for p in pages))
    return len(kept)
