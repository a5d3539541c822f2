"""Real parts for the scheduled-mail tests: an SMTP sink on loopback, a mailbot runtime on
a simulated clock, and helpers to feed it mail and read what the sink received."""

from __future__ import annotations

import datetime as dt
import itertools
from email.message import EmailMessage
from pathlib import Path


from mailbot.clock import FakeClock
from tests.support import SmtpSink
from mailbot.config import Config, load_config
from mailbot.runtime import Runtime, build_runtime
from mailbot.scheduler import Scheduler

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "scheduled"
LIST = "incidents@example.com"

SERVICES_TOML = """
[services.checkout]
description = "Checkout pages and the cart"
[[services.checkout.experts]]
name = "Olga Petrova"
address = "olga@example.com"
role = "on-call"

[services.search]
description = "Product search"
[[services.search.experts]]
name = "Tara Singh"
address = "tara@example.com"
role = "owner"
"""


def write_config(tmp: Path, relay_port: int, extra: str = "", schedule: str = "",
                 postmortem: str = "", digest_time: str = "09:00",
                 leadership_severities: str = '["SEV1", "SEV2"]',
                 services: str = SERVICES_TOML,
                 oncall: str = "customer_statement = false",
                 weekly_summary_day: str = "") -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "services.toml").write_text(services, encoding="utf-8")
    text = f"""
[list]
address = "{LIST}"
bot_address = "mailbot@example.com"
name = "Incidents"

[ingress.smtp]
enabled = false

[outbound]
smtp_host = "127.0.0.1"
smtp_port = {relay_port}
retry_initial_seconds = 1
retry_max_seconds = 2

[storage]
dir = "{tmp / 'var'}"

[policy]
allowed_senders = ["example.com"]
max_mail_per_address_per_hour = 1000
max_list_mail_per_hour = 100000

[services]
file = "services.toml"

[schedule]
timezone = "Europe/Berlin"
digest_time = "{digest_time}"
{schedule}

[postmortem]
reminder_days = 2
action_item_horizon_days = 7
leadership = ["cto@example.com"]
leadership_severities = {leadership_severities}
review_after_days = 3
weekly_summary_day = "{weekly_summary_day}"
{postmortem}

# These tests count every mail: the liaison's draft customer update is asked for only by
# the tests about it (test_planning_customer_statement.py).
[oncall]
{oncall}
{extra}
"""
    path = tmp / "mailbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


_seq = itertools.count(1)


def message(subject: str, body: str = "", *, sender: str = "alice@example.com",
            message_id: str | None = None, in_reply_to: str | None = None,
            attachments: tuple[tuple[str, str, str], ...] = (),
            date: str = "Tue, 24 Mar 2026 10:00:00 +0000") -> bytes:
    """A list message as a person would send it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = LIST
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = f"<{message_id or f'm{next(_seq)}'}@example.com>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    msg.set_content(body)
    for filename, ctype, text in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(text, subtype=subtype, filename=filename)
    return msg.as_bytes()


class Bot:
    """One mailbot runtime on a simulated clock, its relay being the sink."""

    def __init__(self, config: Config, clock: FakeClock, sink: SmtpSink) -> None:
        self.config = config
        self.clock = clock
        self.sink = sink
        self.rt: Runtime = build_runtime(config, clock=clock, scheduled=True)
        self.rt.pipeline.recover()
        assert self.rt.scheduler is not None
        self.scheduler: Scheduler = self.rt.scheduler

    def receive(self, raw: bytes) -> None:
        """Spool and process one message at the clock's time, then deliver what it made."""
        self.rt.spool.put(raw, "pipe")
        self.rt.pipeline.process_pending()
        self.rt.outbox.deliver_due()

    def tick(self, when: dt.datetime | None = None) -> list[str]:
        """Move the clock (if told), run what is due, deliver."""
        if when is not None:
            self.clock.set(when)
        ran = self.scheduler.run_due(self.clock.now())
        self.rt.outbox.deliver_due()
        return ran

    def incident(self, n: int):
        return self.rt.store.get(n)

    def close(self) -> None:
        self.rt.close()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


def load(path: Path) -> Config:
    return load_config(path)


def state(severity: str = "SEV2", phase: str = "investigating",
          commander: str = "alice@example.com", extra: str = "", narrative: str = "") -> str:
    """A follow-up body that meets the standard."""
    return (f"Severity: {severity}\nPhase: {phase}\nCommander: {commander}\n{extra}\n"
            f"{narrative}\n")


def declaration(severity: str = "SEV2", commander: str = "alice@example.com",
                extra: str = "") -> str:
    return state(severity, "investigating", commander,
                 "Channel: #inc-checkout\nSummary: checkout returns 500\n"
                 "Customer-Impact: yes\nServices: checkout\n" + extra,
                 "Checkout has been failing since 09:50.")


GOOD_POSTMORTEM = """\
## Cause
A configuration change removed the connection pool limit; nothing validated it before
the rollout and the canary does not exercise checkout.

## Impact
Checkout returned 500 for 40% of requests for 90 minutes.

## Resolution
Rolled back the configuration, restarted the checkout pods.

## Prevention
Validate pool settings in CI; add checkout to the canary.

## Action items
- Add a CI check for pool limits - owner: bob@example.com - due: {soon}
- Add checkout to the canary (owner: carol@example.com, due {soon})
"""
