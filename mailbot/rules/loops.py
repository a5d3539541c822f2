"""No loops: never answer automatic mail, bounces, or our own mail coming back."""

from __future__ import annotations

import re

from mailbot.config import Config
from mailbot.models import Action, Decision, Facts, ParsedMail
from mailbot.parsing.reports import PHRASE_ONLY

# Vacation responders that predate RFC 3834 mark themselves with these instead.
_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponse")
_BOUNCE_LOCALPARTS = ("mailer-daemon", "postmaster")
_COMMENT = re.compile(r"\([^()]*\)")
_AUTOREPLY_SUBJECT = re.compile(
    r"\s*(?:automatic reply|auto(?:matic)?[- ]?reply|"
    r"out of (?:the )?office(?: auto-?reply| reply)?|"
    r"automatische antwort|abwesenheitsnotiz|réponse automatique|respuesta automática|"
    r"risposta automatica|automatisch antwoord|autosvar|automaattinen vastaus|"
    # Latvian Exchange: "Ārpus biroja atrašanās automātiskā atbilde:", often unaccented.
    r"(?:ārpus biroja atrašanās |arpus biroja atrasanas )?automātiskā atbilde|"
    r"(?:arpus biroja atrasanas )?automatiska atbilde)\s*:",
    re.IGNORECASE)
# RFC 3834 names Precedence only to say it is not standard; these two values are only
# ever written by programs. ("bulk" and "list" are not telling here: lists stamp every
# post with them, people's included.)
_AUTOMATIC_PRECEDENCE = ("junk", "auto_reply")
# A list's own machinery: Mailman's -bounces and -request addresses (Mailman 3's "awaits
# moderator approval" notice comes from -bounces; Mailman 2's says X-List-Administrivia),
# Majordomo's owner-. Not "-owner": people have role addresses like service-owner@.
_LIST_MACHINERY = re.compile(r"(?:owner-.+|.+-(?:bounces|request)(?:\+.*)?)")
# How MTAs title a report, first thing in the subject.
_REPORT_SUBJECT = re.compile(
    r"\s*(?:undeliver|undelivered|delivery status notification|returned mail|"
    r"(?:mail )?delivery (?:failed|failure|problem|notification)|failure notice|"
    r"mail could not be delivered|non-?deliver|message not delivered|"
    r"permanent delivery failure|mail system error)", re.IGNORECASE)


def check_loops(mail: ParsedMail, facts: Facts, config: Config,
                decision: Decision | None) -> Decision | None:
    """Ignore (and never apply) automatic mail, bounces and echoes of our own mail."""
    auto = (mail.header("auto-submitted") or "").strip().lower()
    # RFC 3834 5.1: the keyword, then optional parameters (";") and comments ("(...)"):
    # "No (manual)" is a person.
    if auto and _COMMENT.sub(" ", auto).split(";")[0].strip() != "no":
        return Decision(Action.IGNORE, reason=f"auto-submitted ({auto})")
    if any(mail.header(h) for h in _AUTOREPLY_HEADERS):
        return Decision(Action.IGNORE, reason="auto-reply header")
    # Exchange and Outlook out-of-office replies do not always say Auto-Submitted; their
    # subject does ("Automatic reply: [INC-2] ...", localised).
    if _AUTOREPLY_SUBJECT.match(mail.subject):
        return Decision(Action.IGNORE, reason="auto-reply subject")
    if mail.envelope_sender == "":
        return Decision(Action.IGNORE, reason="bounce (null sender)")
    local = mail.from_address.split("@", 1)[0]
    if local in _BOUNCE_LOCALPARTS:
        return Decision(Action.IGNORE, reason=f"bounce (from {local})")
    if mail.content_type == "multipart/report":
        return Decision(Action.IGNORE, reason="bounce (multipart/report)")
    # Exchange, GroupWise, MDaemon, qmail, antivirus gateways: no standard header, but
    # their text is a known report format (GNU Mailman's detectors, parsing/reports.py).
    if mail.report == PHRASE_ONLY:
        if _REPORT_SUBJECT.match(mail.subject):
            return Decision(Action.IGNORE, reason="bounce (report subject and text)")
    elif mail.report:
        return Decision(Action.IGNORE, reason=f"bounce ({mail.report} report)")
    if _LIST_MACHINERY.fullmatch(local):
        return Decision(Action.IGNORE, reason=f"list notice (from {local})")
    if (mail.header("x-list-administrivia") or "").strip().lower() == "yes":
        return Decision(Action.IGNORE, reason="list notice (X-List-Administrivia)")
    bot = config.list.bot_address
    if mail.from_address == bot:
        return Decision(Action.IGNORE, reason="our own mail came back")
    if any(bot in value.lower() for value in mail.header_all("x-loop")):
        return Decision(Action.IGNORE, reason="X-Loop names us")
    # Any mailbot's mail (ours or a peer instance's), even when a list rewrote From and
    # dropped Auto-Submitted: lists keep X- headers.
    if mail.header("x-mailbot-kind"):
        return Decision(Action.IGNORE, reason="written by a mailbot")
    if facts.own_message:
        return Decision(Action.IGNORE, reason="our own Message-ID came back")
    precedence = (mail.header("precedence") or "").strip().lower()
    if precedence in _AUTOMATIC_PRECEDENCE:
        return Decision(Action.IGNORE, reason=f"precedence: {precedence}")
    return None
