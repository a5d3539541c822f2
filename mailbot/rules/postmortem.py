"""The postmortem review: is a `[POSTMORTEM] [INC-n]` submission complete and blameless?

Takes the ParsedMail (its new text, or a text/plain or text/markdown attachment), the
incident, the day it arrived and the people directory (names -> addresses); hands back a
`PostmortemReview` (pure data, no I/O, no clock). In the chain (`check_postmortem`) it
turns a `postmortem` decision into `postmortem-accept` or `postmortem-reject`; the
planner makes that an acceptance (the incident awaits its review) or a rejection to the
author alone.

Blocking (the postmortem is sent back):
    - a required section is missing or empty: Cause, Impact, Resolution, Prevention,
      Action items;
    - the Action items section lists nothing, or an item lacks an owner or a due date;
    - blame-oriented sentences (a person as the cause of a failure), unless
      [postmortem] blame_is_advice. Blame is told to the author only, never the list.
Not blocking:
    - items due after the horizon ([postmortem] action_item_horizon_days) go to the
      quarterly planning list instead of the action items;
    - items already past due are advice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Mapping

from mailbot.config import Config
from mailbot.models import Action, ActionItem, Decision, Facts, Incident, ParsedMail
from mailbot.parsing.postmortem import (BlameNote, ReviewedItem, find_blame, item_lines,
                                        parse_action_item, people_of, resolve_owner,
                                        section_headings, split_sections)

REQUIRED = ("cause", "impact", "resolution", "prevention", "action_items")


@dataclass(frozen=True)
class PostmortemReview:
    source: str  # "body" or the attachment's file name
    text: str
    sections: dict[str, str]  # section -> its text (only those found)
    missing: tuple[str, ...]  # required sections missing or empty
    items: tuple[ReviewedItem, ...]
    blame: tuple[BlameNote, ...]
    horizon: dt.date
    blame_blocks: bool = True  # false: [postmortem] blame_is_advice
    headings: Mapping[str, str] = dataclasses.field(default_factory=dict)  # as written

    @property
    def incomplete_items(self) -> tuple[ReviewedItem, ...]:
        return tuple(i for i in self.items if i.problems)

    @property
    def far_items(self) -> tuple[ReviewedItem, ...]:
        return tuple(i for i in self.items if i.far)

    @property
    def past_items(self) -> tuple[ReviewedItem, ...]:
        return tuple(i for i in self.items if i.past)

    @property
    def no_items(self) -> bool:
        return "action_items" not in self.missing and not self.items

    @property
    def blocking_blame(self) -> tuple[BlameNote, ...]:
        return self.blame if self.blame_blocks else ()

    @property
    def accepted(self) -> bool:
        return (not self.missing and bool(self.items) and not self.incomplete_items
                and not self.blocking_blame)

    def action_items(self) -> tuple[ActionItem, ...]:
        """The items due within the horizon, numbered A1, A2, ... in the order written."""
        near = [i for i in self.items if not i.far]
        return tuple(ActionItem(i.text, i.owner, i.due, number=n)
                     for n, i in enumerate(near, start=1))

    def quarterly_items(self) -> tuple[ActionItem, ...]:
        """The items due past the horizon: moved to quarterly planning."""
        return tuple(ActionItem(i.text, i.owner, i.due) for i in self.items if i.far)

    def reason(self) -> str:
        """One line for the log and the timeline."""
        if self.accepted:
            return "postmortem accepted"
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(s.replace("_", " ") for s in self.missing))
        if self.no_items:
            parts.append("no action items")
        if self.incomplete_items:
            parts.append(f"{len(self.incomplete_items)} action item(s) without owner or due "
                         "date")
        if self.blocking_blame:
            parts.append(f"{len(self.blocking_blame)} blame-oriented sentence(s)")
        return "postmortem rejected: " + "; ".join(parts)


def _candidates(mail: ParsedMail) -> list[tuple[str, str]]:
    found = [("body", mail.new_text or "")]
    for a in mail.attachments:
        if a.text and a.content_type in ("text/plain", "text/markdown", "text/x-markdown"):
            found.append((a.filename or a.content_type, a.text))
    return found


def review_postmortem(mail: ParsedMail, incident: Incident | None, config: Config,
                      today: dt.date, people: Mapping[str, str] | None = None
                      ) -> PostmortemReview:
    """Check a submission; `today` is the local day it arrived; `people` resolves owners
    named without an address (see `parsing.postmortem.people_directory`)."""
    horizon = today + dt.timedelta(days=config.postmortem.action_item_horizon_days)
    best: tuple[int, str, str, dict[str, str]] | None = None
    for source, text in _candidates(mail):
        sections = split_sections(text)
        score = sum(1 for s in REQUIRED if sections.get(s, "").strip())
        if best is None or score > best[0]:
            best = (score, source, text, sections)
    assert best is not None
    _, source, text, sections = best
    missing = tuple(s for s in REQUIRED if not sections.get(s, "").strip())
    items = tuple(parse_action_item(line, today, horizon)
                  for line in item_lines(sections.get("action_items", "")))
    items = tuple(dataclasses.replace(i, owner=resolve_owner(i.owner, people or {}))
                  for i in items)
    prose = "\n\n".join(v for k, v in sections.items() if k != "action_items") \
        if sections else text
    blame = find_blame(prose, people_of(incident))
    return PostmortemReview(source=source, text=text, sections=sections, missing=missing,
                            items=items, blame=blame, horizon=horizon,
                            blame_blocks=not config.postmortem.blame_is_advice,
                            headings=section_headings(text))


def decide_postmortem(review: PostmortemReview, incident_id: int) -> Decision:
    """The review as a Decision, for the log and `mailbot check`."""
    action = Action.POSTMORTEM_ACCEPT if review.accepted else Action.POSTMORTEM_REJECT
    return Decision(action, reason=review.reason(), incident_id=incident_id,
                    missing=review.missing, details={"review": review})


def check_postmortem(mail: ParsedMail, facts: Facts, config: Config,
                     decision: Decision | None) -> Decision | None:
    """A submission (tagged, or a reply that is one) is accepted or sent back on its
    review; the review rides along in the decision's details for the planner."""
    if decision is None or decision.action != Action.POSTMORTEM:
        return None
    incident = facts.incident
    assert incident is not None and facts.today is not None
    review = review_postmortem(mail, incident, config, facts.today, facts.people)
    return decide_postmortem(review, incident.id)
