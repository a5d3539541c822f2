"""An on-call week as people really write it: five incidents, hand-written mail from
Gmail-, Outlook- and Apple-style clients (replies to whatever mail is on top, quoted
history, signatures, a forwarded customer question, a block pasted from an old mail, a
typo, a postmortem sent as a plain reply), on a simulated clock with the scheduler
ticking. Every mail mailbot writes is checked for its headers, its length and its words;
the whole week is written to test-artifacts/conversation-week.txt to be read.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from tests.support.bot import ARTIFACTS, LIST

BERLIN = ZoneInfo("Europe/Berlin")
SITE = "https://status.example.com/"
PUBLISH = f'[publish]\nurl = "{SITE}"\n'

ALICE = "Alice Smith <alice@example.com>"
BOB = "Bob Stone <bob@example.com>"
CAROL = "Carol Jones <carol@example.com>"
DAVE = "Dave Kim <dave@example.com>"
ERIN = "Erin Wu <erin@example.com>"
FRANK = "Frank Otto <frank@example.com>"
GRACE = "Grace Liu <grace@example.com>"
HEIDI = "Heidi Berg <heidi@example.com>"


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=BERLIN).astimezone(dt.timezone.utc)


@dataclass
class Sent:
    """A mail someone wrote, as the week remembers it (to reply to it later)."""

    message_id: str
    subject: str
    sender: str
    text: str
    date: dt.datetime


_ids = itertools.count(1)


def _quote_gmail(original: Sent) -> str:
    when = original.date.astimezone(BERLIN).strftime("%a, %d %b %Y at %H:%M")
    quoted = "\n".join("> " + line if line else ">" for line in original.text.splitlines())
    return f"\n\nOn {when}, {original.sender} wrote:\n{quoted}\n"


def _quote_outlook(original: Sent) -> str:
    when = original.date.astimezone(BERLIN).strftime("%A, %B %d, %Y %I:%M %p")
    return (f"\n\n________________________________\nFrom: {original.sender}\nSent: {when}\n"
            f"To: {LIST}\nSubject: {original.subject}\n\n{original.text}\n")


def _quote_apple(original: Sent) -> str:
    when = original.date.astimezone(BERLIN).strftime("%d %b %Y, at %H:%M")
    quoted = "\n".join("> " + line if line else ">" for line in original.text.splitlines())
    return f"\n\nSent from my iPhone\n\n> On {when}, {original.sender} wrote:\n>\n{quoted}\n"


QUOTE = {"gmail": _quote_gmail, "outlook": _quote_outlook, "apple": _quote_apple}
RE = {"gmail": "Re: ", "outlook": "RE: ", "apple": "Re: "}


class Week:
    """Feeds the bot mail at the right times and keeps every mail of the week in order."""

    def __init__(self, bot, sink) -> None:
        self.bot, self.sink = bot, sink
        self.mails: list = []  # what mailbot wrote, in order
        self.human: list[Sent] = []
        self.now = local(23, 8, 0)

    def run_until(self, until: dt.datetime) -> None:
        """Tick every five minutes up to `until`, collecting what mailbot sends."""
        while self.now < until:
            self.now = min(self.now + dt.timedelta(minutes=5), until)
            self.bot.tick(self.now)
            self._collect()

    def _collect(self) -> list:
        new = self.sink.take(len(self.sink.unread())) if self.sink.unread() else []
        self.mails.extend(new)
        return new

    def send(self, when: dt.datetime, sender: str, subject: str, body: str, *,
             client: str = "gmail", answering=None) -> list:
        """One hand-written mail; `answering` is the mail it replies to (a Sent or a mail
        mailbot wrote). Returns what mailbot wrote about it."""
        self.run_until(when)
        self.bot.clock.set(when)
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = LIST
        msg["Date"] = format_datetime(when)
        message_id = f"week{next(_ids)}.{client}@example.com"
        msg["Message-ID"] = f"<{message_id}>"
        if answering is not None:
            original = answering if isinstance(answering, Sent) else self._as_sent(answering)
            subject = subject or RE[client] + original.subject
            msg["In-Reply-To"] = f"<{original.message_id}>"
            msg["References"] = f"<{original.message_id}>"
            body = body + QUOTE[client](original)
        msg["Subject"] = subject
        if client == "outlook":
            msg["Thread-Topic"] = subject
        msg.set_content(body)
        self.human.append(Sent(message_id, subject, sender, body, when))
        self.bot.receive(msg.as_bytes())
        return self._collect()

    @staticmethod
    def _as_sent(mail) -> Sent:
        m = mail.message
        return Sent(m["Message-ID"].strip("<>"), str(m["Subject"]),
                    str(m["From"]), mail.text, m["Date"].datetime)

    def last(self, kind: str, ref: str):
        return [m for m in self.mails if m.kind == kind and f"[{ref}]" in m.subject][-1]


def before_footer(text: str) -> list[str]:
    lines = text.splitlines()
    end = lines.index("-- ") if "-- " in lines else len(lines)
    return [line for line in lines[:end] if line.strip()]


def play_week(week: Week) -> dict[str, object]:
    """The week's mail; returns the mails the checks look at by name."""
    seen: dict[str, object] = {}
    send = week.send

    # ---- Monday: INC-1, checkout (six updates in the week it was written from)
    [ack] = send(local(23, 10, 2), ALICE, "[DECLARE] Checkout returns 500 for EU customers",
                 "Severity: SEV2\nPhase: investigating\nCommander: alice@example.com\n"
                 "Roles: comms=bob@example.com, liaison=carol@example.com\n"
                 "Customer-Impact: yes\nServices: checkout\n\n"
                 "Checkout has been failing for about 30% of EU requests since 09:50.\n\n"
                 "--\nAlice Smith\nSRE, Example Corp\n")
    seen["inc1_declared"] = ack
    # Declared without a channel: the ack has a block to fill in. Marco answers it.
    [seen["inc1_identified"]] = send(
        local(23, 10, 20), ALICE, "", "Severity: SEV2\nPhase: identified\n"
        "Commander: alice@example.com\nChannel: #inc-checkout\n\n"
        "The payments pool is exhausted after the 09:45 config push.", answering=ack)
    # Carol forwards the customer's question into the thread: a comment.
    seen["inc1_comment"] = send(
        local(23, 10, 31), CAROL, "",
        "Alice, can I tell them it's rolling back? ACME is asking for an ETA.\n\n"
        "Carol\n\n---------- Forwarded message ---------\nFrom: ops@acme.example\n"
        "Date: Mon, 23 Mar 2026 at 10:28\nSubject: checkout errors\n\n"
        "Are you aware of checkout errors? Our EU shop is losing orders.\n",
        client="outlook", answering=seen["inc1_identified"])
    [seen["inc1_mitigating"]] = send(
        local(23, 10, 45), ALICE, "", "Severity: SEV2\nPhase: mitigating\n"
        "Commander: alice@example.com\n\nRolling back the 09:45 config push. Carol: yes, "
        "tell them a fix is rolling out; ETA 30 minutes.", answering=seen["inc1_identified"])
    # Bob answers the declaration's ack from his phone and pastes what it showed, adding
    # himself as scribe: the state of three mails ago.
    seen["inc1_pasted"] = send(
        local(23, 10, 52), BOB, "", "Severity: SEV2\nPhase: investigating\n"
        "Commander: alice@example.com\nScribe: bob@example.com\n\nI'll keep the notes.",
        client="apple", answering=ack)
    # He sends it again as the note says, in reply to it: his scribe line, today's phase.
    [seen["inc1_pasted_again"]] = send(
        local(23, 11, 0), BOB, "", "Severity: SEV2\nPhase: mitigating\n"
        "Commander: alice@example.com\nScribe: bob@example.com\n",
        client="apple", answering=seen["inc1_pasted"][0])
    [seen["inc1_monitoring"]] = send(
        local(23, 11, 30), ALICE, "", "Severity: SEV2\nPhase: monitoring\n"
        "Commander: alice@example.com\n\nRollback done at 11:20; error rate back to 0.1%.",
        answering=seen["inc1_mitigating"])
    send(local(23, 11, 35), CAROL, "", "Told ACME. Thanks all!", client="outlook",
         answering=seen["inc1_monitoring"])
    [seen["inc1_resolved"]] = send(
        local(23, 12, 30), ALICE, "", "Severity: SEV2\nPhase: resolved\n"
        "Commander: alice@example.com\nPostmortem-Owner: bob@example.com\n\n"
        "No errors for an hour. Closing the bridge.", answering=seen["inc1_monitoring"])

    # ---- Monday afternoon: INC-2, search, from Outlook: a misspelled key, then a typo
    [seen["inc2_declared"]] = send(
        local(23, 14, 10), DAVE, "[DECLARE] Search results are stale",
        "sevrity: 3\nPhase: investigating\nCommander: dave@example.com\n"
        "Channel: #inc-search\nRoles: expert=erin@example.com\nServices: search\n\n"
        "The index has not refreshed since 13:00.\n\nDave Kim\nSearch team\n",
        client="outlook")
    seen["inc2_typo"] = send(
        local(23, 14, 40), DAVE, "", "Severity: SEV3\nPhase: identifed\n"
        "Commander: dave@example.com\n\nThe indexer is stuck on a poisoned document.",
        client="outlook", answering=seen["inc2_declared"])
    [seen["inc2_identified"]] = send(
        local(23, 14, 44), DAVE, "", "Severity: SEV3\nPhase: identified\n"
        "Commander: dave@example.com\n\nThe indexer is stuck on a poisoned document.",
        client="outlook", answering=seen["inc2_typo"][0])
    send(local(23, 15, 0), ERIN, "", "+1, seeing the same in staging.",
         answering=seen["inc2_identified"])
    [seen["inc2_mitigating"]] = send(
        local(23, 16, 0), DAVE, "", "Severity: SEV3\nPhase: mitigating\n"
        "Commander: dave@example.com\n\nSkipping the document, reindexing.",
        client="outlook", answering=seen["inc2_identified"])

    # ---- Tuesday: INC-3, payments, SEV1, declared in a hurry without a commander
    [seen["inc3_declared"]] = send(
        local(24, 9, 40), FRANK, "[DECLARE] Payment webhooks delayed by 20 minutes",
        "Sev: 1\nCustomer-Impact: yes\nServices: payments\n\n"
        "Webhooks from the PSP arrive 20 minutes late. Orders stay 'pending'.\n\n"
        "Sent from my iPhone", client="apple")
    [seen["inc3_ic"]] = send(
        local(24, 9, 48), GRACE, "", "Severity: SEV1\nPhase: investigating\nIC: me\n"
        "Channel: #inc-payments\nLiaison: carol@example.com\n\nTaking command.",
        answering=seen["inc3_declared"])
    seen["inc3_comment"] = send(
        local(24, 10, 5), FRANK, "", "The PSP status page says nothing. Calling them.",
        client="apple", answering=seen["inc3_ic"])
    [seen["inc3_identified"]] = send(
        local(24, 10, 20), GRACE, "", "Severity: SEV1\nPhase: identified\n"
        "Commander: grace@example.com\n\nOur webhook consumer is stuck behind one slow "
        "partition.", answering=seen["inc3_ic"])
    send(local(24, 10, 24), DAVE, "RE: [INC-2] Search results are stale",
         "Severity: SEV3\nPhase: resolved\nCommander: dave@example.com\n\n"
         "Reindex done, results are fresh.", client="outlook",
         answering=seen["inc2_mitigating"])
    [seen["inc3_mitigating"]] = send(
        local(24, 10, 50), GRACE, "", "Severity: SEV1\nPhase: mitigating\n"
        "Commander: grace@example.com\n\nRebalancing the consumer group.",
        answering=seen["inc3_identified"])
    # Nothing for an hour at SEV1: the reminders chase Grace; then she answers.
    [seen["inc3_resolved"]] = send(
        local(24, 12, 10), GRACE, "", "Severity: SEV1\nPhase: resolved\n"
        "Commander: grace@example.com\n\nBacklog drained, webhooks on time since 11:55.",
        answering=seen["inc3_mitigating"])

    # ---- Wednesday: INC-4, CI, SEV4, internal; a postmortem with the tag
    [seen["inc4_declared"]] = send(
        local(25, 9, 30), HEIDI, "[DECLARE] CI runners offline",
        "Severity: SEV4\nPhase: investigating\nCommander: heidi@example.com\n"
        "Channel: #ci\nRoles: expert=frank@example.com\nCustomer-Impact: no\n\n"
        "No builds since 09:10.")
    send(local(25, 9, 45), FRANK, "", "Is this why my deploy is stuck?", client="apple",
         answering=seen["inc4_declared"])
    send(local(25, 10, 30), HEIDI, "", "Severity: SEV4\nPhase: resolved\n"
         "Commander: heidi@example.com\n\nExpired runner token renewed.",
         answering=seen["inc4_declared"])
    seen["inc4_postmortem"] = send(
        local(25, 15, 0), HEIDI, "[POSTMORTEM] [INC-4] CI runners offline",
        "Cause: the runner registration token expired; nothing warned before it did.\n\n"
        "Impact: no CI builds for 80 minutes.\n\n"
        "Resolution: renewed the token and restarted the runners.\n\n"
        "Prevention: alert 14 days before the token expires.\n\n"
        "Action items:\n- Add an expiry alert for runner tokens - owner: heidi@example.com "
        "- due: 2026-03-27\n")

    # ---- Thursday: INC-1's postmortem, as a reply to the reminder; INC-5 goes back
    reminder = week.last("reminder_postmortem", "INC-1") if any(
        m.kind == "reminder_postmortem" for m in week.mails) else seen["inc1_resolved"]
    seen["inc1_postmortem"] = send(
        local(26, 9, 15), BOB, "",
        "Here it is.\n\nCause: a configuration push removed the payments pool limit, and "
        "nothing validated it before the rollout.\n\n"
        "Impact: checkout failed for about 30% of EU requests for 2.5 hours.\n\n"
        "Resolution: rolled back the configuration push.\n\n"
        "Prevention: validate pool limits in CI; canary config pushes.\n\n"
        "Action items:\n- CI check for pool limits - owner: bob@example.com - due: 2026-03-30\n"
        "- Canary for config pushes - owner: alice@example.com - due: 2026-04-01\n",
        client="apple", answering=reminder)
    [seen["inc5_declared"]] = send(
        local(26, 13, 0), ALICE, "[DECLARE] Login latency above 2 s",
        "Severity: SEV2\nPhase: investigating\nCommander: alice@example.com\n"
        "Channel: #inc-login\nRoles: comms=bob@example.com\nCustomer-Impact: yes\n"
        "Liaison: carol@example.com\nServices: auth\n\np99 login latency is 2.4 s.")
    [seen["inc5_monitoring"]] = send(
        local(26, 13, 40), ALICE, "", "Severity: SEV2\nPhase: monitoring\n"
        "Commander: alice@example.com\n\nScaled the auth pool; watching.",
        answering=seen["inc5_declared"])
    [seen["inc5_back"]] = send(
        local(26, 14, 10), ALICE, "", "Severity: SEV2\nPhase: mitigating\n"
        "Commander: alice@example.com\n\nLatency is climbing again; scaling further.",
        answering=seen["inc5_monitoring"])
    send(local(26, 14, 12), BOB, "", "Posted on the status page.", client="outlook",
         answering=seen["inc5_back"])

    # ---- Friday: INC-5 resolved
    [seen["inc5_resolved"]] = send(
        local(27, 10, 0), ALICE, "", "Severity: SEV2\nPhase: resolved\n"
        "Commander: alice@example.com\n\nStable for 18 hours.",
        answering=seen["inc5_back"])
    week.run_until(local(27, 18, 0))
    return seen


def transcript(week: Week) -> str:
    out = []
    for m in week.mails:
        out.append("=" * 78)
        out.append(f"{m.message['Date']}  {m.kind}  to {', '.join(m.rcpt_tos)}")
        out.append(f"Subject: {m.message['Subject']}")
        out.append("")
        out.append(m.text.rstrip())
    return "\n".join(out) + "\n"


def test_an_on_call_week(make_bot, sink):
    bot = make_bot(extra=PUBLISH, postmortem='')
    week = Week(bot, sink)
    seen = play_week(week)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS.parent / "conversation-week.txt").write_text(transcript(week))
    kinds = Counter(m.kind for m in week.mails)
    store = bot.rt.store

    # Every mail: Reply-To the list, marked automatic, links where it is about an
    # incident; none is longer than it must be.
    for m in week.mails:
        msg = m.message
        assert msg["Reply-To"] == LIST, m.kind
        assert msg["Auto-Submitted"] in ("auto-replied", "auto-generated"), m.kind
        if m.kind == "digest":
            rows = [line.split()[0] for line in m.text.splitlines() if line.startswith("  INC-")]
            for ref in rows:
                assert f"{SITE}incidents/{ref}.html" in m.text, ref
            continue
        ref = msg["Subject"].split("]")[0].split("[")[-1]
        assert ref.startswith("INC-"), msg["Subject"]
        assert f"{SITE}incidents/{ref}.html" in m.text, (m.kind, msg["Subject"])
        assert msg["In-Reply-To"], m.kind

    # Acks of routine updates: short, what changed first.
    routine = [m for m in week.mails if m.kind == "ack" and m.text.startswith("Updated:")]
    assert len(routine) >= 8
    for m in routine:
        lines = before_footer(m.text)
        assert len(lines) <= 20, m.text
        lines = [line for line in lines if not line.startswith("!!")]
        assert lines[1] in ("What changed:", "Nothing changed in the incident's fields."), m.text

    # Comments: kept, never rejected, never on the list; one note per sender and incident.
    notes = [m for m in week.mails if m.kind == "comment_note"]
    assert sorted((m.rcpt_tos[0], m.subject.split("]")[0]) for m in notes) == [
        ("bob@example.com", "[INC-5"), ("carol@example.com", "[INC-1"),
        ("erin@example.com", "[INC-2"), ("frank@example.com", "[INC-3"),
        ("frank@example.com", "[INC-4")]
    inc1 = store.get(1)
    comments = [e for e in inc1.timeline if e.kind == "comment"]
    assert [c.note.splitlines()[0] for c in comments] == [
        "Alice, can I tell them it's rolling back? ACME is asking for an ETA.",
        "Told ACME. Thanks all!"]
    assert all(store.get(n).rejected_count == 0 for n in (3, 4, 5))

    # The pasted block did not move INC-1 back; its sender alone was told, and his scribe
    # line made it in with his second mail.
    [told] = seen["inc1_pasted"]
    assert told.kind == "rejection" and told.rcpt_tos == ["bob@example.com"]
    assert 'phase: you wrote "investigating", it is now "mitigating"' in told.text
    assert "scribe=bob@example.com" in told.text
    assert seen["inc1_pasted_again"].kind == "ack"
    assert "BACK" not in seen["inc1_pasted_again"].text
    assert "scribe: (none) -> bob@example.com" in seen["inc1_pasted_again"].text
    phases = [c.new for e in inc1.timeline for c in e.changes if c.field == "phase"]
    assert phases == ["investigating", "identified", "mitigating", "monitoring", "resolved"]

    # A backward phase written afresh is applied, and said.
    assert "!! The phase went BACK: monitoring -> mitigating" in seen["inc5_back"].text

    # The typos: one did-you-mean each, the meant value in the block.
    decl2 = seen["inc2_declared"].text
    assert '"sevrity:" (did you mean "Severity:"?' in decl2 and "\nSeverity: SEV3\n" in decl2
    [typo] = seen["inc2_typo"]
    assert typo.rcpt_tos == ["dave@example.com"]
    assert typo.text.count('did you mean "identified"') == 1 and "Missing" not in typo.text
    assert "\nPhase: identified\n" in typo.text

    # INC-1's postmortem came as a reply to the reminder: reviewed and accepted.
    [pm_ack] = seen["inc1_postmortem"]
    assert pm_ack.kind == "postmortem_ack" and pm_ack.rcpt_tos == [LIST]
    # Accepted postmortems await their review (no [REVIEWED] this week).
    assert store.get(1).review_pending and store.get(4).review_pending

    # The week, by kind (reminders and digests are the scheduler's; see the report).
    assert len(week.human) == 31
    assert (kinds["ack"], kinds["rejection"], kinds["comment_note"], kinds["postmortem_ack"]) \
        == (21, 2, 5, 2)
