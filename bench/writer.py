"""mailbot's MIME writer (`mailbot/wire.py`) against the stdlib's `email.message`.

The same replies rendered both ways, in one process, after a warm-up: the header fields
the composer writes (From with a display name, To, Cc, Reply-To, Subject, Date,
Message-ID, In-Reply-To, References, Auto-Submitted, X-Loop, ...), a text body the size
of an acknowledgement, and for every fifth reply an HTML alternative. One reply in ten
has a non-ASCII subject, name and body (encoded words, quoted-printable). The stdlib
side is what wire.py replaced: `EmailMessage` with `policy.default` (CRLF), serialised
with `as_bytes()`. Also the cost of importing each writer in a fresh interpreter.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from email.utils import format_datetime

from harness import PYTHON

_DEFINITIONS = "\n".join(
    f"SEV{k}: " + "a definition of what this severity means for the company " * 2
    for k in range(1, 5))


def replies(items, n: int = 1000) -> list[dict]:
    """`n` reply specs built from the corpus (cycled)."""
    import datetime as dt

    now = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
    out = []
    for k in range(n):
        item = items[k % len(items)]
        text = item.raw.split(b"\r\n\r\n", 1)[1].decode("utf-8").replace("\r\n", "\n")
        title = item.message_id.split("@")[0]
        subject = f"[INC-{item.incident}] Updated: {title}"
        name = "incidents bot"
        if k % 10 == 9:
            subject += " — Störung bei Zahlungen, 決済の障害"
            name = "Incident-Bot für Störungen"
            text += "\nÄnderung: Rückbau läuft. 障害対応中です。\n"
        body = f"Thanks, recorded.\n\n{text}\n-- \n{_DEFINITIONS}\n"
        out.append({
            "name": name, "subject": subject, "to": ["incidents@example.com"],
            "cc": [item.sender], "now": now,
            "message_id": f"mailbot.{k}.ack.0.abc@example.com",
            "in_reply_to": item.message_id,
            "references": [f"ref{j}.{item.message_id}" for j in range(k % 6)],
            "body": body,
            "html": f"<p>{body}</p>" if k % 5 == 4 else None,
        })
    return out


def render_wire(spec: dict) -> bytes:
    from mailbot import wire

    refs = [*spec["references"], spec["in_reply_to"]]
    headers = [
        "From: " + wire.mailbox(spec["name"], "mailbot@example.com"),
        wire.address_header("To", spec["to"]),
        wire.address_header("Cc", spec["cc"]),
        wire.address_header("Reply-To", ["incidents@example.com"]),
        wire.text_header("Subject", spec["subject"]),
        "Date: " + format_datetime(spec["now"]),
        wire.msgid_header("Message-ID", [spec["message_id"]]),
        wire.msgid_header("In-Reply-To", [spec["in_reply_to"]]),
        wire.msgid_header("References", refs),
        wire.text_header("Auto-Submitted", "auto-replied"),
        "X-Auto-Response-Suppress: All",
        "X-Loop: mailbot@example.com",
        wire.text_header("X-Mailbot-Kind", "ack"),
    ]
    return wire.assemble(headers, spec["body"], html=spec["html"], seed=spec["message_id"])


def render_stdlib(spec: dict) -> bytes:
    from email.headerregistry import Address
    from email.message import EmailMessage
    from email.policy import default

    policy = default.clone(linesep="\r\n")
    msg = EmailMessage(policy=policy)
    msg["From"] = Address(spec["name"], addr_spec="mailbot@example.com")
    msg["To"] = ", ".join(spec["to"])
    msg["Cc"] = ", ".join(spec["cc"])
    msg["Reply-To"] = "incidents@example.com"
    msg["Subject"] = spec["subject"]
    msg["Date"] = spec["now"]
    msg["Message-ID"] = f"<{spec['message_id']}>"
    msg["In-Reply-To"] = f"<{spec['in_reply_to']}>"
    msg["References"] = " ".join(f"<{r}>" for r in [*spec["references"], spec["in_reply_to"]])
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Loop"] = "mailbot@example.com"
    msg["X-Mailbot-Kind"] = "ack"
    msg.set_content(spec["body"])
    if spec["html"] is not None:
        msg.add_alternative(spec["html"], subtype="html")
    return msg.as_bytes()


def per_reply_ms(render, specs: list[dict]) -> float:
    for spec in specs[:50]:  # warm-up: imports, caches
        render(spec)
    t0 = time.perf_counter()
    for spec in specs:
        render(spec)
    return (time.perf_counter() - t0) * 1000 / len(specs)


_ALREADY = "import base64, email.parser, email.utils, hashlib, typing"


def _own_times(code: str) -> dict[str, int]:
    from cold import child_env

    proc = subprocess.run([str(PYTHON), "-X", "importtime", "-c", code],
                          capture_output=True, text=True, env=child_env())
    out = {}
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            own, _, name = line[len("import time:"):].split("|")
            if own.strip().isdigit():
                out[name.strip()] = int(own)
    return out


def import_ms(statement: str, runs: int = 9) -> float:
    """Median ms of importing `statement`'s modules beyond what the pipe path imports
    anyway (email.parser and email.utils for mail-parser, hashlib and base64 for the
    store and the composer, typing for nearly everything): the sum of the own times of the
    modules only it brings."""
    totals = []
    for _ in range(runs):
        base = _own_times(_ALREADY)
        both = _own_times(f"{_ALREADY}\n{statement}")
        totals.append(sum(t for name, t in both.items() if name not in base))
    return statistics.median(totals) / 1000


def run_once(items, n: int = 1000) -> dict:
    specs = replies(items, n)
    return {"wire_ms": per_reply_ms(render_wire, specs),
            "stdlib_ms": per_reply_ms(render_stdlib, specs)}
