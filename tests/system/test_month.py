"""A scripted month of incidents (February 2026, Berlin): a dozen incidents, a reopen,
rejected and accepted postmortems, reviews, items done and overdue. The weekly summary
to leadership is checked against a count made by hand (in the comments), and the site's
action-items and metrics pages are published from the same store.

Week 1 (2 - 8 Feb)   INC-1 SEV1 checkout, INC-2 SEV2 payments, INC-3 SEV3 search (open
                     past the week's end)
Week 2 (9 - 15 Feb)  INC-4 SEV1 checkout (customers), INC-5 SEV2 search, INC-6 SEV2
                     checkout+payments (customers), INC-7 SEV3 search (still open);
                     INC-2 reopened and resolved again; INC-3 resolved
Week 3 (16 - 22 Feb) INC-8 .. INC-10;  Week 4 (23 Feb - 1 Mar) INC-11, INC-12
"""

from __future__ import annotations

import datetime as dt

from mailbot.publish import publish_site
from tests.test_publish_browser import png_facts, require_chromium, run_chromium

from tests.support.bot import ARTIFACTS, message, utc

CTO = "cto@example.com"
ALICE = "alice@example.com"  # commander of everything
BOB = "bob@example.com"


def body(severity, phase, *, services="checkout", customer="no", extra=""):
    return (f"Severity: {severity}\nPhase: {phase}\nCommander: {ALICE}\n"
            f"Channel: #inc\nSummary: something broke\nCustomer-Impact: {customer}\n"
            f"Services: {services}\n{extra}\nWhat we see.\n")


def postmortem(items: str, cause: str = "An expired certificate was not caught: no alert "
               "watches expiry.") -> str:
    return (f"## Cause\n{cause}\n\n## Impact\nSome requests failed.\n\n"
            f"## Resolution\nRenewed the certificate.\n\n## Prevention\nAlert on expiry.\n\n"
            f"## Action items\n{items}\nThanks,\nBob\n")


class Month:
    def __init__(self, bot):
        self.bot = bot
        self.sev = {}

    def at(self, when):
        self.bot.clock.set(when)

    def declare(self, n, when, severity, services="checkout", customer="no", extra=""):
        self.at(when)
        self.sev[n] = severity
        self.bot.receive(message(f"[DECLARE] Incident {n}",
                                 body(severity, "investigating", services=services,
                                      customer=customer, extra=extra),
                                 message_id=f"root{n}"))
        assert self.bot.incident(n) is not None

    def phase(self, n, when, phase, extra=""):
        self.at(when)
        self.bot.receive(message(f"Re: [INC-{n}] Incident {n}",
                                 f"Severity: {self.sev[n]}\nPhase: {phase}\n"
                                 f"Commander: {ALICE}\n{extra}\nUpdate.\n"))

    def send(self, when, subject, text, sender=BOB):
        self.at(when)
        self.bot.receive(message(subject, text, sender=sender))


def test_a_month_of_incidents_and_the_weekly_figures(make_bot, tmp_path):
    bot = make_bot(digest_time="09:00", weekly_summary_day="monday")
    m = Month(bot)
    mail = []

    def tick(when):
        bot.tick(when)
        mail.extend(bot.sink.take(len(bot.sink.unread())) if bot.sink.unread() else [])

    def drain():
        mail.extend(bot.sink.take(len(bot.sink.unread())) if bot.sink.unread() else [])

    # ---- week 1
    m.declare(1, utc(2026, 2, 2, 9, 0), "SEV1", customer="yes")
    m.phase(1, utc(2026, 2, 2, 11, 0), "resolved")
    m.declare(2, utc(2026, 2, 4, 10, 0), "SEV2", services="payments")
    m.phase(2, utc(2026, 2, 4, 12, 0), "resolved")
    m.send(utc(2026, 2, 5, 10, 0), "[POSTMORTEM] [INC-1] Incident 1", postmortem(
        "- Alert on expiry - owner: bob@example.com - due: 2026-02-09\n"
        "- Renewal runbook - owner: @olga - due: 2026-02-06\n"
        "- Move to managed certificates - owner: bob@example.com - due: 2026-04-30\n"))
    assert bot.incident(1).review_pending
    m.declare(3, utc(2026, 2, 6, 11, 0), "SEV3", services="search")
    drain()
    tick(utc(2026, 2, 9, 8, 0))  # Monday 09:00 Berlin: the first weekly summary
    drain()

    # ---- week 2
    m.send(utc(2026, 2, 9, 10, 0), "[DONE] [INC-1]", "Done: A2", sender=CTO)
    m.declare(4, utc(2026, 2, 9, 10, 0), "SEV1", customer="yes",
              extra="Started-At: 2026-02-09 09:30 UTC")
    m.phase(4, utc(2026, 2, 9, 13, 30), "resolved")  # from Started-At 09:30: 4h
    m.send(utc(2026, 2, 10, 8, 0), "[REVIEWED] [INC-1]", "Reviewed with the team.", sender=CTO)
    m.send(utc(2026, 2, 10, 9, 0), "[DONE] [INC-1]", "Done: A1", sender=ALICE)
    m.phase(3, utc(2026, 2, 10, 11, 0), "resolved")  # INC-3: 4 days
    m.declare(5, utc(2026, 2, 10, 11, 0), "SEV2", services="search")
    m.phase(5, utc(2026, 2, 10, 12, 0), "resolved")  # 1h
    m.declare(6, utc(2026, 2, 11, 8, 0), "SEV2", services="checkout, payments", customer="yes")
    m.phase(2, utc(2026, 2, 11, 10, 0), "investigating")  # INC-2 is back: reopened
    assert bot.incident(2).status == "open"
    drain()  # its review, invited by Monday's reminder, is cancelled
    [cancel] = [x for x in mail if x.kind == "review_cancel"]
    assert cancel.subject.startswith("[INC-2] Postmortem review cancelled")
    [part] = [p for p in cancel.message.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "CANCEL"
    assert b"METHOD:CANCEL" in part.get_payload(decode=True)
    m.phase(6, utc(2026, 2, 11, 10, 0), "resolved",
            extra="Resolved-At: 2026-02-11 09:30 UTC")  # 1h 30m
    m.phase(2, utc(2026, 2, 11, 12, 0), "resolved")  # 7d 2h since its declaration
    # A postmortem that blames a person: back to bob alone, nothing recorded.
    m.send(utc(2026, 2, 12, 9, 0), "[POSTMORTEM] [INC-4] Incident 4", postmortem(
        "- Rotate keys - owner: bob@example.com - due: 2026-02-13\n",
        cause="Priya forgot to upload the new IdP certificate."))
    assert bot.incident(4).postmortem is None
    m.send(utc(2026, 2, 12, 10, 0), "[POSTMORTEM] [INC-4] Incident 4", postmortem(
        "| Action | Owner | Due |\n|---|---|---|\n"
        "| Certificate checklist | Tara | Friday |\n"
        "| Expiry alert | bob@example.com | 2026-02-13 |\n"
        "| Replace the IdP | bob@example.com | 2026-04-30 |\n"))
    pm4 = bot.incident(4).postmortem
    assert [(a.label, a.owner, a.due) for a in pm4.action_items] == [
        ("A1", "tara@example.com", dt.date(2026, 2, 13)),
        ("A2", BOB, dt.date(2026, 2, 13))]
    assert [a.text for a in pm4.quarterly] == ["Replace the IdP"]
    m.send(utc(2026, 2, 13, 9, 0), "[POSTMORTEM] [INC-6] Incident 6", postmortem(
        "- Pool limit check - owner: bob@example.com - due: 2026-02-17\n"
        "- Canary for payments - owner: bob@example.com - due: 2026-02-20\n"
        "- New payment gateway - owner: bob@example.com - due: 2026-05-30\n"
        "- Split the checkout DB - owner: bob@example.com - due: 2026-06-30\n"))
    m.send(utc(2026, 2, 13, 12, 0), "[DONE] [INC-4]", "Done: A1", sender="tara@example.com")
    m.send(utc(2026, 2, 13, 13, 0), "[REVIEWED] [INC-4]", "Reviewed.", sender=ALICE)
    m.declare(7, utc(2026, 2, 13, 15, 0), "SEV3", services="search")
    drain()
    tick(utc(2026, 2, 14, 8, 0))  # Saturday 09:00: INC-4 A2 is overdue; bob hears it
    overdue = [x for x in mail if x.kind == "reminder_action_item"
               and "overdue" in x.subject]
    assert [x.subject for x in overdue][-1] == \
        "[INC-4] Action item A2 overdue: Expiry alert"
    tick(utc(2026, 2, 16, 8, 0))  # Monday: the weekly summary of week 2
    [week2] = [x for x in mail if x.kind == "weekly_summary"
               and "(2026-02-09)" in x.subject]
    assert week2.rcpt_tos == [CTO]
    text = week2.text
    # The hand count of week 2 (9 - 15 Feb):
    #   declared INC-4 (SEV1), INC-5, INC-6 (SEV2), INC-7 (SEV3)             -> 4
    #   services: checkout (4, 6), search (5, 7), payments (6)
    #   customer-facing: INC-4, INC-6                                         -> 2
    #   resolved: INC-2 7d 2h, INC-3 4d, INC-4 4h, INC-5 1h, INC-6 1h 30m    -> 5
    #     median 4h, worst 7d 2h (INC-2)
    #   postmortems overdue at Mon 16 Feb 09:00: INC-3 and INC-5 (review was Fri 13th
    #     14:00); INC-2's moved with its second resolution to Mon 16th 14:00 -> 2
    #   reviewed: INC-1, INC-4                                                 -> 2
    #   items done: INC-1 A2, INC-1 A1, INC-4 A1                               -> 3
    #   items overdue now: INC-4 A2 (due 13th)                                 -> 1
    #   quarterly added: INC-4 1, INC-6 2                                      -> 3
    assert week2.subject == ("Incidents weekly: 4 incidents, 2 postmortems overdue, "
                             "1 action item overdue (2026-02-09)")
    assert "Incidents declared: 4\n  SEV1: 1\n  SEV2: 2\n  SEV3: 1\n" in text
    assert "By service:\n  checkout: 2\n  search: 2\n  payments: 1\n" in text
    assert "Customer-facing: 2\n" in text
    assert "Resolved: 5\nTime to resolve: median 4h, worst 7d 2h (INC-2)\n" in text
    assert "  SEV1: median 4h, worst 4h (1 resolved)\n" in text
    assert "  SEV2: median 1h 30m, worst 7d 2h (3 resolved)\n" in text
    assert "Postmortems overdue (now): 2\n" in text
    assert "Postmortems reviewed: 2\n" in text
    assert "Action items done: 3\n" in text
    assert "Action items overdue (now): 1\n" in text
    assert "Quarterly planning items added: 3\n" in text

    # ---- weeks 3 and 4: five more incidents, so a dozen in all
    m.declare(8, utc(2026, 2, 17, 9, 0), "SEV2", services="checkout", customer="yes")
    m.phase(8, utc(2026, 2, 17, 10, 0), "resolved")
    m.send(utc(2026, 2, 17, 11, 0), "[DONE] [INC-6]", "Done: A1, A2")
    m.declare(9, utc(2026, 2, 18, 9, 0), "SEV3", services="search")
    m.declare(10, utc(2026, 2, 19, 9, 0), "SEV1", services="payments", customer="yes")
    m.phase(10, utc(2026, 2, 19, 11, 0), "resolved")
    m.declare(11, utc(2026, 2, 24, 9, 0), "SEV3", services="search")
    m.declare(12, utc(2026, 2, 25, 9, 0), "SEV2", services="checkout")
    m.send(utc(2026, 2, 25, 10, 0), "[REVIEWED] [INC-6]", "Reviewed.", sender="dave@example.com")
    refused = [x for x in bot.sink.take(len(bot.sink.unread()))
               if x.kind == "review_refused"]
    assert refused and refused[0].rcpt_tos == ["dave@example.com"]
    drain()
    tick(utc(2026, 2, 23, 8, 0))
    tick(utc(2026, 3, 2, 8, 0))
    [week3] = [x for x in mail if x.kind == "weekly_summary" and "(2026-02-16)" in x.subject]
    # Week 3: INC-8 (SEV2), INC-9 (SEV3), INC-10 (SEV1); resolved INC-8 1h, INC-10 2h;
    # done: INC-6 A1, A2.
    assert "Incidents declared: 3\n" in week3.text
    assert "Resolved: 2\nTime to resolve: median 1h 30m, worst 2h (INC-10)\n" in week3.text
    assert "Action items done: 2\n" in week3.text
    [week4] = [x for x in mail if x.kind == "weekly_summary" and "(2026-02-23)" in x.subject]
    assert "Incidents declared: 2\n" in week4.text
    assert sum(1 for _ in bot.rt.store.all_incidents()) == 12

    # The site, published from the same store.
    out = tmp_path / "site"
    publish_site(out, bot.rt.store.all_incidents(), bot.rt.directory, bot.config,
                 utc(2026, 3, 2, 8, 0))
    actions = (out / "action-items.html").read_text()
    metrics = (out / "metrics.html").read_text()
    assert "INC-4</a></td>\n    <td class=\"nowrap\">A2</td>" in actions
    assert actions.count('<tr class="item-quarterly">') == 4
    assert metrics.count("<svg") >= 2 and "<script" not in metrics.split("</style>")[-1]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "month-weekly-2026-02-09.txt").write_text(week2.text)

    # Both pages in headless Chromium: drawn (not blank), the charts without any script.
    chromium = require_chromium()
    for page in ("metrics.html", "action-items.html"):
        png = ARTIFACTS / page.replace(".html", ".png")
        png.unlink(missing_ok=True)
        run_chromium(chromium, tmp_path, f"--screenshot={png}", "--window-size=1280,1400",
                     "--hide-scrollbars", (out / page).as_uri())
        width, height, distinct = png_facts(png)
        assert (width, height) == (1280, 1400) and distinct > 64
    dom = run_chromium(chromium, tmp_path, "--dump-dom", (out / "metrics.html").as_uri())
    assert dom.count("<rect") > 10 and "<script" not in dom.split("</style>")[-1]
