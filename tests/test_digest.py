"""The daily digest: content, text and HTML for 0, 1 and 500 incidents, a real browser,
`digest_when_empty`, and `mailbot digest [--send]`."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mailbot.lock import WriterLock
from mailbot.models import Incident

from tests.support.bot import ARTIFACTS, LIST, REPO, declaration, message, state, utc

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
MORNING = utc(2026, 3, 24, 8, 0)  # 09:00 in Berlin
_VOID = {"meta", "br", "hr", "img", "link", "input", "col", "wbr"}


class Tree(HTMLParser):
    """Checks nesting as it parses and keeps every element with its classes and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.elements: list[tuple[str, dict, list[str]]] = []  # (tag, attrs, ancestors)
        self.text: list[str] = []
        self.doctype = False

    def handle_decl(self, decl):
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), list(self.stack)))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else '-'}>")
            return
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] not in ("style", "title"):
            self.text.append(data)

    def find(self, tag: str, cls: str | None = None):
        return [(t, a, anc) for t, a, anc in self.elements
                if t == tag and (cls is None or cls in (a.get("class") or "").split())]


def parse_html(html: str) -> Tree:
    tree = Tree()
    tree.feed(html)
    tree.close()
    assert tree.doctype, "no <!DOCTYPE html>"
    assert tree.errors == [] and tree.stack == [], (tree.errors, tree.stack)
    assert [t for t, _, _ in tree.elements[:3]] == ["html", "head", "meta"]
    for tag in ("html", "head", "body", "main", "title", "footer"):
        assert len(tree.find(tag)) == 1, tag
    return tree


def seed(bot, n: int) -> list[Incident]:
    """`n` open incidents straight into the store (one commit), every severity and flag."""
    sevs = ["SEV1", "SEV2", "SEV3", "SEV4", None]
    incidents = []
    for i in range(1, n + 1):
        declared = MORNING - dt.timedelta(hours=2 + i % 30)
        incidents.append(Incident(
            id=i, title=f"Incident number {i}" if i != 1 else
            '<script>alert("x")</script> & checkout "down"',
            severity=sevs[i % 5], phase="mitigating", commander=f"ic{i}@example.com",
            customer_impact=(i % 3 == 0), services=("checkout",) if i % 2 else ("search",),
            declared_by="alice@example.com", declared_at=declared,
            updated_at=declared + dt.timedelta(minutes=30 if i % 4 else 110),
            root_message_id=f"r{i}@example.com"))
    bot.rt.store.commit("test:seed", incidents=incidents, next_incident_id=n + 1)
    return incidents


def digest_of(bot, sink):
    bot.tick(MORNING)
    [mail] = [m for m in sink.take(len(sink.unread()) or 1) if m.kind == "digest"]
    return mail


def check_text(mail, n: int) -> None:
    text = mail.text
    assert text.startswith("Incident digest for 2026-03-24, as of 2026-03-24 09:00 CET.")
    assert text.rstrip().endswith("To update an incident, reply in its thread (or put [INC-n] "
                                  "in the subject) with\nSeverity:, Phase: and Commander: lines.")
    assert "SEV4: Low: a temporary internal outage" in text
    for i in range(1, n + 1):
        assert f"\n  INC-{i}  " in text
    assert all(len(line) < 998 for line in mail.data.split(b"\r\n"))


@pytest.fixture
def bot(make_bot):
    return make_bot(schedule='reminders_cc_list = false')


def test_no_incidents_gives_a_short_digest(bot, sink):
    mail = digest_of(bot, sink)
    assert mail.subject == "Incident digest 2026-03-24: no open incidents"
    assert mail.rcpt_tos == [LIST]
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message.get_content_type() == "multipart/alternative"
    assert "No open incidents." in mail.text and len(mail.text.splitlines()) < 20
    tree = parse_html(mail.html)
    assert tree.find("p", "empty") and not tree.find("table")
    assert len(tree.find("dt")) == 4  # the severity definitions end the HTML too
    save_and_screenshot(mail.html, "digest-0")


def test_one_incident_shows_everything_the_contract_names(bot, sink):
    [incident] = seed(bot, 1)
    mail = digest_of(bot, sink)
    assert mail.subject == "Incident digest 2026-03-24: 1 open (1 SEV2), 1 stale"
    check_text(mail, 1)
    text = mail.text
    assert '<script>alert("x")</script> & checkout "down"' in text  # text is not escaped
    assert ("phase mitigating, commander ic1@example.com, open 3h, last update 2h 30m ago"
            in text)
    assert "!! STALE: no accepted update for 2h 30m" in text
    assert "NO CUSTOMER LIAISON" not in text
    assert "experts: Olga Petrova <olga@example.com>: checkout on-call" in text
    tree = parse_html(mail.html)
    [row] = tree.find("tr", "incident")
    assert "stale" in row[1]["class"].split() and row[1]["id"] == "INC-1"
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert tree.find("a")[0][1]["href"] == "mailto:olga@example.com"
    save_and_screenshot(mail.html, "digest-1")


def test_five_hundred_incidents_render_valid_text_and_html(bot, sink):
    incidents = seed(bot, 500)
    mail = digest_of(bot, sink)
    check_text(mail, 500)
    assert mail.subject.startswith("Incident digest 2026-03-24: 500 open (100 SEV1, 100 SEV2, "
                                   "100 SEV3, 100 SEV4)")
    tree = parse_html(mail.html)
    rows = tree.find("tr", "incident")
    assert len(rows) == 500
    assert all("table" in anc and "tbody" in anc for _, _, anc in rows)
    tables = tree.find("table", "incidents")
    assert [t[1]["data-severity"] for t in tables] == ["SEV1", "SEV2", "SEV3", "SEV4", ""]
    liaison = [r for r in rows if "no-liaison" in r[1]["class"].split()]
    assert len(liaison) == sum(1 for i in incidents if i.needs_liaison)
    assert mail.text.count("NO CUSTOMER LIAISON") == len(liaison)
    path = save_and_screenshot(mail.html, "digest-500")
    if path is not None:
        dom = run_chromium(path.parent, "--dump-dom", path.as_uri())
        assert dom.count('<tr class="incident') == 500


# A complete postmortem with one action item due 2026-03-27; tests add more items.
POOL_POSTMORTEM = """\
Cause: a pool limit was removed and nothing validated it.
Impact: checkout errors for an hour.
Resolution: rolled back.
Prevention: validate pool settings.
Action items:
- Add a pool check - owner: bob@example.com - due: 2026-03-27
"""


def test_resolved_postmortems_and_action_items_appear(make_bot, sink):
    bot = make_bot(digest_time="23:30")
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Search slow", declaration("SEV3"), message_id="a"))
    bot.receive(message("[DECLARE] Checkout failing", declaration("SEV2"), message_id="b"))
    bot.clock.set(utc(2026, 3, 23, 12, 0))
    for n in (1, 2):
        bot.receive(message(f"[INC-{n}] update", state(phase="resolved")))
    bot.clock.set(utc(2026, 3, 24, 10, 0))
    bot.receive(message("[POSTMORTEM] [INC-2] Checkout failing", POOL_POSTMORTEM + """\
- Add a canary - owner: carol@example.com - due: 2026-03-25
- Rewrite the pool - owner: dave@example.com - due: 2026-09-01
"""))
    bot.receive(message("[REVIEWED] [INC-2] Checkout failing", "Reviewed."))  # the commander
    sink.take(len(sink.unread()))
    bot.tick(utc(2026, 3, 24, 11, 0))  # the reminders' sweep notices the closure
    view_text = run_print(bot)
    assert "RESOLVED IN THE LAST DAY: 2" in view_text
    assert "INC-2  Checkout failing (SEV2), resolved 2026-03-23 13:00 CET; postmortem accepted" \
        in view_text
    assert "POSTMORTEMS: 0 overdue, 1 due" in view_text
    # Due at the proposed review: resolved + 3 days, at 14:00 local (a Thursday).
    assert "INC-1  Search slow: due by 2026-03-26 14:00 CET" in view_text
    assert "2026-03-25  INC-2 A2  Add a canary (owner carol@example.com)" in view_text
    assert "2026-03-27  INC-2 A1  Add a pool check" in view_text
    assert "Rewrite the pool" not in view_text  # beyond the 7-day horizon
    # Two days later: the canary item is overdue, INC-1's postmortem too.
    bot.clock.set(utc(2026, 3, 26, 14, 0))
    later = run_print(bot)
    assert "2026-03-25 OVERDUE  INC-2 A2  Add a canary" in later
    assert "INC-1  Search slow: OVERDUE since 2026-03-26 14:00 CET" in later
    assert "RESOLVED IN THE LAST DAY: 0" in later


def run_print(bot) -> str:
    from mailbot.cli import run_digest_command
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run_digest_command(bot.rt, send=False) == 0
    return out.getvalue().replace("\r\n", "\n")


def test_an_empty_day_sends_nothing_when_configured(make_bot, sink):
    bot = make_bot(schedule="digest_when_empty = false")
    assert "job:digest:2026-03-24" in bot.tick(MORNING)
    assert bot.rt.store.is_processed("job:digest:2026-03-24")
    bot.tick(MORNING + dt.timedelta(hours=1))
    assert sink.unread() == []
    seed(bot, 1)
    bot.tick(utc(2026, 3, 25, 8, 0))
    assert sorted(m.kind for m in sink.take(2)) == ["digest", "reminder_stale"]


def test_digest_command_prints_then_sends_once_per_day(bot, sink, capsys):
    from mailbot.cli import run_digest_command

    seed(bot, 2)
    bot.clock.set(utc(2026, 3, 24, 6, 0))  # before digest_time: --send sends now anyway
    assert run_digest_command(bot.rt, send=False) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Subject: Incident digest 2026-03-24: 2 open")
    assert "\n  INC-2  Incident number 2\n" in printed
    assert sink.unread() == [] and not bot.rt.store.is_processed("job:digest:2026-03-24")
    assert run_digest_command(bot.rt, send=True) == 0
    assert "digest sent to incidents@example.com" in capsys.readouterr().out
    assert [m.kind for m in sink.take(1)] == ["digest"]
    assert run_digest_command(bot.rt, send=True) == 0
    assert "already sent" in capsys.readouterr().out
    assert "job:digest:2026-03-24" not in bot.tick(MORNING)  # the daemon's slot is done
    assert [m.kind for m in sink.unread() if m.kind == "digest"] == []


def test_digest_send_refuses_while_the_daemon_holds_the_lock(bot, sink, capsys):
    from mailbot.cli import run_digest_command

    daemon_lock = WriterLock(bot.rt.lock.path)
    assert daemon_lock.acquire()
    try:
        assert run_digest_command(bot.rt, send=True) != 0
    finally:
        daemon_lock.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "`mailbot serve` is running" in err[0]
    assert "sends today's digest itself at 09:00 Europe/Berlin" in err[0]
    assert sink.unread() == []


def test_digest_send_while_serve_runs_says_what_serve_did_today(bot, sink, capsys):
    from mailbot.cli import run_digest_command

    def refused_with() -> tuple[int, str]:
        daemon_lock = WriterLock(bot.rt.lock.path)
        assert daemon_lock.acquire()
        try:
            code = run_digest_command(bot.rt, send=True)
        finally:
            daemon_lock.release()
        return code, capsys.readouterr().err

    seed(bot, 1)
    bot.clock.set(MORNING + dt.timedelta(minutes=5))  # due, and the daemon has not ticked
    code, err = refused_with()
    assert code == 75
    assert "sends today's digest itself on its next tick (it was due at 09:00" in err
    bot.tick(MORNING + dt.timedelta(minutes=5))
    assert [m.kind for m in sink.take(len(sink.unread()) or 1)].count("digest") == 1
    code, err = refused_with()
    assert code == 0
    assert "already handled today's digest (2026-03-24)" in err
    assert "next is due tomorrow at 09:00 Europe/Berlin" in err
    assert "sends" not in err


def test_the_cli_prints_the_digest(tmp_path, sink):
    from tests.support.bot import write_config

    path = write_config(tmp_path / "cli", sink.port)
    done = subprocess.run([sys.executable, "-m", "mailbot", "digest", "--config", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Subject: Incident digest ")
    assert "No open incidents." in done.stdout
    assert sink.unread() == []


# ---------------------------------------------------------------- the browser


def require_chromium() -> bool:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return True
    message = (f"{CHROMIUM} not found: install it with `apt-get install -y chromium` to "
               "screenshot the digest")
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so this is an error)")
    return False


def run_chromium(profile_parent: Path, *args: str) -> str:
    profile = profile_parent / "chromium-profile"
    profile.mkdir(exist_ok=True)
    done = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def save_and_screenshot(html: str, name: str) -> Path | None:
    """Write the HTML under test-artifacts/scheduled/ and screenshot it in Chromium."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = ARTIFACTS / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    if not require_chromium():
        pytest.skip(f"{CHROMIUM} not found: install it with `apt-get install -y chromium`")
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    run_chromium(ARTIFACTS, f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    return page


def test_postmortem_due_date_is_the_proposed_review_even_across_a_weekend(make_bot):
    from mailbot.timing import review_start
    from mailbot.models import Incident

    bot = make_bot()
    # Resolved on Wednesday 2026-03-25 15:06 CET: + 3 days is a Saturday.
    incident = Incident(id=1, title="x", status="resolved",
                        resolved_at=utc(2026, 3, 25, 14, 6))
    due = review_start(bot.config, incident)
    assert due == utc(2026, 3, 30, 12, 0)  # Monday 14:00 CEST (DST began on the 29th)
    assert due.astimezone(bot.config.schedule.tz).strftime("%a %H:%M") == "Mon 14:00"


def test_digest_send_says_queued_until_the_relay_takes_it(bot, sink, capsys):
    from mailbot.cli import run_digest_command

    seed(bot, 1)
    bot.clock.set(utc(2026, 3, 24, 6, 0))
    sink.refuse = "451 4.3.0 try again later"
    assert run_digest_command(bot.rt, send=True) == 75
    assert "relay did not take it yet" in capsys.readouterr().out
    # Run again while the relay still refuses: not "already sent", and still 75.
    assert run_digest_command(bot.rt, send=True) == 75
    again = capsys.readouterr().out
    assert "is queued" in again and "already sent" not in again
    sink.refuse = ""
    bot.clock.set(utc(2026, 3, 24, 7, 0))  # past the outbox's retry delay
    assert run_digest_command(bot.rt, send=True) == 0
    assert "already sent" in capsys.readouterr().out
    assert [m.kind for m in sink.take(1)] == ["digest"]


def test_action_items_stay_in_the_digest_after_a_reopen(make_bot, sink):
    bot = make_bot(digest_time="23:30")
    bot.clock.set(utc(2026, 3, 23, 9, 0))
    bot.receive(message("[DECLARE] Checkout failing", declaration("SEV2"), message_id="b"))
    bot.clock.set(utc(2026, 3, 23, 12, 0))
    bot.receive(message("[INC-1] update", state(phase="resolved")))
    bot.clock.set(utc(2026, 3, 24, 10, 0))
    bot.receive(message("[POSTMORTEM] [INC-1] Checkout failing", POOL_POSTMORTEM))
    bot.receive(message("[REVIEWED] [INC-1] Checkout failing", "Reviewed."))  # the commander
    assert bot.incident(1).status == "closed"
    bot.clock.set(utc(2026, 3, 24, 11, 0))
    bot.receive(message("Re: [INC-1] it is back", state(phase="investigating")))
    assert bot.incident(1).status == "open"
    sink.take(len(sink.unread()))
    view_text = run_print(bot)
    assert "2026-03-27  INC-1 A1  Add a pool check" in view_text


def test_html_experts_sit_under_each_incident_collapsed_to_on_call_and_owner(make_bot, sink):
    services = '''
[services.checkout]
description = "Checkout"
depends_on = ["pay"]
[[services.checkout.experts]]
name = "Olga Petrova"
address = "olga@example.com"
role = "on-call"
[[services.checkout.experts]]
name = "Pat Kim"
address = "pat@example.com"
role = "owner"
[[services.checkout.experts]]
name = "Sam Ortiz"
address = "sam@example.com"
role = "expert"
[services.pay]
description = "Payments"
[[services.pay.experts]]
name = "Quinn Ade"
address = "quinn@example.com"
role = "on-call"
[services.search]
description = "Search"
[[services.search.experts]]
name = "Tara Singh"
address = "tara@example.com"
role = "expert"
'''
    bot = make_bot(schedule='reminders_cc_list = false', services=services)
    seed(bot, 2)  # INC-1 names checkout, INC-2 search (no on-call, no owner)
    mail = digest_of(bot, sink)
    tree = parse_html(mail.html)
    assert '<th scope="col">Experts</th>' not in mail.html  # no column beside the list
    rows = [(a["class"].split()[0], a.get("id")) for t, a, anc in tree.find("tr")
            if "class" in a]
    assert rows == [("incident", "INC-1"), ("experts", None),
                    ("incident", "INC-2"), ("experts", None)]
    linked = [a["href"] for t, a, anc in tree.find("a") if "tr" in anc]
    assert linked == ["mailto:olga@example.com", "mailto:pat@example.com"]
    html = " ".join(re.sub(r"<[^>]+>", "", mail.html).split())
    assert ("Call Olga Petrova (checkout on-call), Pat Kim (checkout owner); "
            "2 more experts in the text part") in html
    assert "1 expert in the text part" in html  # INC-2: nobody to call first
    assert "Sam Ortiz" not in mail.html and "Quinn Ade" not in mail.html
    assert "Sam Ortiz" in mail.text and "Quinn Ade" in mail.text  # the text part lists all
