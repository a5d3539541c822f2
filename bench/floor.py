"""The floor: what the design card's libraries alone cost per message, measured the same
way as `mailbot ingest` (a child process, replies to the bench's SMTP sink).

Per corpus message, and nothing else: the stdlib MIME parse mail-parser builds on, its
address and date readers (the calls mailbot makes), one small Jinja2 template rendered,
one TinyDB upsert into an in-memory table of 200 incidents, one smtplib `sendmail` over a
reused connection. No spool, no durability, no rules, no quotes or fields, no threads.
mailbot's own per-message cost is this plus everything that makes it an incident list
that never loses a message; the two figures side by side say how much of that there is.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import time

from harness import PYTHON, Sink

_CHILD = r'''
import email, pickle, smtplib, sys, time
t0 = time.perf_counter()
import jinja2
from mailparser.dates import parse_mail_date
from mailparser.utils import get_addresses
from tinydb import TinyDB
from tinydb.storages import MemoryStorage
from tinydb.table import Document
items = pickle.load(sys.stdin.buffer)
env = jinja2.Environment(autoescape=False)
tmpl = env.from_string(
    "{% block subject %}[INC-{{ n }}] Updated: {{ title }}{% endblock %}"
    "{% block body %}Thanks {{ name }}, recorded for INC-{{ n }}:\n{{ text }}\n"
    "-- mailbot{% endblock %}")
table = TinyDB(storage=MemoryStorage).table("incidents")
for i in range(200):
    table.insert(Document({"title": "t" * 80, "timeline": [{"at": "2026-11-25T10:00:00",
                          "text": "x" * 150}] * 5}, doc_id=i + 1))
smtp = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
ready = time.perf_counter()
for n, (message_id, raw) in enumerate(items):
    msg = email.message_from_bytes(raw)
    sender = get_addresses(msg["From"], decode_names=True)[0][1]
    get_addresses(msg["To"], decode_names=True)
    parse_mail_date(msg["Date"])
    subject, text = msg["Subject"], msg.get_payload(decode=True).decode("utf-8")
    ctx = tmpl.new_context({"n": n % 200 + 1, "title": subject, "name": sender, "text": text})
    subj, body = "".join(tmpl.blocks["subject"](ctx)), "".join(tmpl.blocks["body"](ctx))
    table.upsert(Document({"title": subj, "timeline": [{"at": "2026-11-25T10:00:00",
                          "text": text[:150]}] * 5}, doc_id=n % 200 + 1))
    reply = (f"From: bot@example.com\r\nTo: {sender}\r\nSubject: {subj}\r\n"
             f"Message-ID: <floor.{n}@example.com>\r\nIn-Reply-To: <{message_id}>\r\n\r\n"
             f"{body}\r\n").encode("utf-8")
    smtp.sendmail("bot@example.com", [sender], reply)
smtp.quit()
print(ready - t0)
'''


def run_once(items, sink: Sink) -> dict:
    """Seconds to the last reply at the sink, msg/s, and CPU (user + system) per message."""
    sink.reset()
    payload = pickle.dumps([(i.message_id, i.raw) for i in items])
    before = os.times()
    t0 = time.monotonic()
    proc = subprocess.Popen([str(PYTHON), "-c", _CHILD, str(sink.port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _, err = proc.communicate(payload, timeout=300)
    exited = time.monotonic()
    after = os.times()  # communicate() reaped the child: its CPU is in children_*
    if proc.returncode != 0:
        raise RuntimeError(f"floor child exited {proc.returncode}: {err.decode()[-300:]}")
    last = sink.wait_replies([i.message_id for i in items], timeout=60)
    elapsed = max(last, exited) - t0
    cpu = (after.children_user - before.children_user) + \
        (after.children_system - before.children_system)
    return {"seconds": elapsed, "rate": len(items) / elapsed,
            "cpu_ms": 1000 * cpu / len(items)}
