"""The generated mail the benchmarks feed: declarations and follow-ups, for mailbot and
for the Roundup peer (the same conversation, in each one's own subject language).

Deterministic (seeded), so every run and both systems see the same mail.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SENDERS = [f"{name}@example.com" for name in
           ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")]
SERVICES = ["api", "checkout", "search", "billing", "auth"]
PHASES = ["investigating", "identified", "mitigating", "monitoring"]  # never "resolved":
# a resolve/reopen would make the result depend on the arrival order of parallel clients.
ROUNDUP_STATUS = ["chatting", "in-progress", "testing", "need-eg"]

NARRATIVE = [
    "Error rate is falling after the rollback of the 09:45 deploy.",
    "We see elevated latency on the primary database; failing over now.",
    "Customers in the EU region report timeouts on checkout.",
    "The cache cluster lost a node; traffic is being redistributed.",
    "A bad config push disabled the feature flag service; reverting.",
    "Dashboards show recovery; keeping an eye on the queue depth.",
]


@dataclass(frozen=True)
class Item:
    """One message of the conversation."""

    n: int  # position in the corpus
    kind: str  # "declare" | "followup" | "rejected" (a follow-up without Phase)
    incident: int  # 1-based ordinal of the declaration it belongs to (= INC number when
    # declarations are processed in corpus order)
    message_id: str
    sender: str
    raw: bytes  # mailbot's version
    roundup: bytes  # Roundup's version (same text, Roundup's subject tags)


def _headers(sender: str, to: str, subject: str, message_id: str, date: str,
             reply_to: list[str]) -> list[str]:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}",
             f"Message-ID: <{message_id}>", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"]
    if reply_to:
        lines.append(f"In-Reply-To: <{reply_to[-1]}>")
        lines.append("References: " + " ".join(f"<{m}>" for m in reply_to))
    return lines


def _message(headers: list[str], body: str) -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def build_corpus(total: int = 1000, declarations: int = 200, reject_share: float = 0.10,
                 *, seed: int = 42, tag: str = "c", min_gap: int = 12) -> list[Item]:
    """`total` messages: `declarations` new incidents spread through the corpus, the rest
    follow-ups (with quoted text) to incidents declared at least `min_gap` messages
    earlier; `reject_share` of the follow-ups lack Phase (mailbot rejects them)."""
    rng = random.Random(seed)
    followups = total - declarations
    # Declarations first in each stretch, so every follow-up has an incident to go to.
    slots = ["declare"] * min(declarations, min_gap) + []
    remaining_decl = declarations - len(slots)
    rest = ["declare"] * remaining_decl + ["followup"] * followups
    rng.shuffle(rest)
    slots += rest
    n_reject = round(followups * reject_share)
    followup_positions = [i for i, k in enumerate(slots) if k == "followup"]
    rejected = set(rng.sample(followup_positions, n_reject))

    items: list[Item] = []
    declared_at: list[int] = []  # position of each declaration
    last_mid: dict[int, list[str]] = {}  # incident -> thread so far
    titles: dict[int, str] = {}
    state: dict[int, dict[str, str]] = {}
    for pos, kind in enumerate(slots):
        minute = pos % 60
        date = f"Wed, 25 Nov 2026 10:{minute:02d}:00 +0000"
        sender = rng.choice(SENDERS)
        mid = f"{tag}{pos:05d}.{rng.getrandbits(40):010x}@bench.example.com"
        if kind == "declare":
            inc = len(declared_at) + 1
            declared_at.append(pos)
            service = rng.choice(SERVICES)
            title = f"{service} degraded: incident {inc} ({rng.getrandbits(16):04x})"
            titles[inc] = title
            sev = f"SEV{rng.randint(1, 4)}"
            state[inc] = {"sev": sev, "commander": sender}
            body = (f"Severity: {sev}\nPhase: investigating\nCommander: {sender}\n"
                    f"Channel: #inc-{inc}\nRoles: comms={rng.choice(SENDERS)}, "
                    f"liaison={rng.choice(SENDERS)}\nCustomer-Impact: yes\n"
                    f"Services: {service}\nSummary: {title}\n\n{rng.choice(NARRATIVE)}\n")
            raw = _message(_headers(sender, "incidents@example.com", f"[DECLARE] {title}",
                                    mid, date, []), body)
            rbody = f"{rng.choice(NARRATIVE)}\n\nSeverity: {sev}\nCommander: {sender}\n"
            rup = _message(_headers(sender, "issue_tracker@example.com", title, mid, date, []),
                           rbody)
            last_mid[inc] = [mid]
            items.append(Item(pos, "declare", inc, mid, sender, raw, rup))
            continue
        # a follow-up to an incident declared at least min_gap messages ago
        eligible = [i + 1 for i, p in enumerate(declared_at) if pos - p >= min_gap]
        inc = rng.choice(eligible or [1])
        title = titles[inc]
        thread = last_mid[inc][-8:]
        phase = rng.choice(PHASES)
        sev = rng.choice([state[inc]["sev"], f"SEV{rng.randint(1, 4)}"])
        state[inc]["sev"] = sev
        quoted = "\n".join("> " + line for line in (
            f"Severity: {sev}", f"Commander: {state[inc]['commander']}", "",
            rng.choice(NARRATIVE), rng.choice(NARRATIVE)))
        is_rejected = pos in rejected
        fields = f"Severity: {sev}\n" + ("" if is_rejected else f"Phase: {phase}\n") + \
            f"Commander: {state[inc]['commander']}\n"
        narrative = rng.choice(NARRATIVE)
        body = (f"{fields}\n{narrative}\n\nOn Wed, 25 Nov 2026 at 10:00, "
                f"{rng.choice(SENDERS)} wrote:\n{quoted}\n\n-- \n{sender}\n")
        raw = _message(_headers(sender, "incidents@example.com", f"Re: [INC-{inc}] {title}",
                                mid, date, thread), body)
        status = "bogus" if is_rejected else rng.choice(ROUNDUP_STATUS)
        rbody = (f"{narrative}\n\nOn Wed, 25 Nov 2026 at 10:00, {rng.choice(SENDERS)} "
                 f"wrote:\n{quoted}\n\n-- \n{sender}\n")
        rup = _message(_headers(sender, "issue_tracker@example.com",
                                f"Re: [issue{inc}] {title} [status={status}]", mid, date,
                                thread), rbody)
        last_mid[inc].append(mid)
        items.append(Item(pos, "rejected" if is_rejected else "followup", inc, mid, sender,
                          raw, rup))
    return items


def to_mbox(items: list[Item]) -> bytes:
    """Roundup's versions as one Unix mbox (From_ lines, >From quoting)."""
    out = []
    for item in items:
        text = item.roundup.replace(b"\r\n", b"\n")
        body = b"\n".join((b">" + line if line.startswith(b"From ") else line)
                          for line in text.split(b"\n"))
        out.append(b"From " + item.sender.encode() + b" Wed Nov 25 10:00:00 2026\n" + body
                   + b"\n\n")
    return b"".join(out)
