"""Is a message a delivery report? The MIME tree in, the name of the format out.

Standard reports say so in their headers (the null sender, `multipart/report`), which
`rules/loops.py` reads. Many real MTAs and gateways write neither: Exchange, GroupWise,
MDaemon, qmail, Lotus, antivirus gateways, mail relayed by a list. GNU Mailman's bounce
detectors (flufl.bounce) recognise those by their text; a report they can read names the
address that failed, and that is what is asked of them here.

flufl.bounce reads every line of every part, so it is given a copy of the tree that keeps
what reports are written in and nothing else, which bounds its time and memory whatever
the message: headers; text parts (the first `MAX_TEXT_CHARS` characters of text in all)
and delivery status blocks, at most `MAX_PARTS` parts. Attached messages
(`message/rfc822`) and other attachments are left out: they are the returned original, or
a report a person forwards on purpose, and neither makes the message itself a report.

The detectors are called one by one (flufl.bounce's `_detectors`, pinned below 7 in
pyproject.toml) rather than through its `scan_message`, which runs one detector that must
be left out (below), cannot be given the gates that keep the cost low, and raises when a
detector does.
"""

from __future__ import annotations

import email.message
import logging
from email.iterators import body_line_iterator

from flufl.bounce._detectors import (
    aol, caiwireless, dsn, exchange, exim, groupwise, microsoft, netscape, postfix, qmail,
    simplematch, simplewarning, sina, smtp32, yahoo, yale,
)

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 64 * 1024  # of text in all: reports state the failure near the top
MAX_PARTS = 32
MAX_DEPTH = 8

# flufl.bounce's own order (`_scan._DETECTORS`), most specific first, without LLNL's:
# that one takes any line with ", someone@host," for a report, such as a person's
# "Roles: comms=bob@example.com, liaison=carol@example.com, ...".
_DETECTORS = (
    dsn.DSN, exim.Exim, sina.Sina, yahoo.Yahoo, yale.Yale, smtp32.SMTP32, postfix.Postfix,
    qmail.Qmail, groupwise.GroupWise, microsoft.Microsoft, caiwireless.Caiwireless,
    exchange.Exchange, netscape.Netscape, aol.AOL, simplematch.SimpleMatch,
    simplewarning.SimpleWarning,
)


# SimpleMatch and SimpleWarning cost more than all the others together: each of their ~50
# pattern sets reads every line, case-insensitively. A set finds nothing unless its start
# pattern matches a line first, and every start pattern contains a plain phrase that any
# match must contain ("the following addresses had", "very to the following recipients "):
# when none of those is in the lower-cased text, neither detector can find anything and
# neither is run. A pattern without such a phrase yields "", which always lets them run.
def _required_phrase(pattern: str) -> str:
    """The longest plain text that every match of `pattern` contains, lower-cased."""
    runs: list[str] = []
    run, depth, i = "", 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "|" and depth == 0:
            return ""  # a top-level alternative: nothing is required
        if c in "\\[(){}.*+?|^$" or depth:
            if c in "?*{" and run:
                run = run[:-1]  # the character before a quantifier is optional
            runs.append(run)
            run = ""
            if c == "\\":
                i += 1
            elif c == "[":
                i = pattern.find("]", i + 2)
                if i < 0:
                    return ""
            depth += (c == "(") - (c == ")")
        else:
            run += c
        i += 1
    runs.append(run)
    return max(runs, key=len).lower()


_PHRASES: dict[type, tuple[str, ...]] = {  # by detector class
    detector: tuple(_required_phrase(start.pattern) for start, _, _ in detector.PATTERNS)
    for detector in (simplematch.SimpleMatch, simplewarning.SimpleWarning)
}


# Gates that say cheaply when a detector cannot find anything. Four only read reports from
# one address, which they parse out of From with the stdlib's slow address parser: a word
# that address must contain tells first. Two read only around a delivery-status part.
_FROM_WORDS = {yahoo.Yahoo: "yahoo", sina.Sina: "sina", aol.AOL: "aol", yale.Yale: "daemon"}
_NEEDS_PART = {dsn.DSN: "message/delivery-status", netscape.Netscape: "message/delivery-status"}

# A phrase only an MTA writes as its first words ("this message was created automatically
# by mail delivery software"), in a report whose failed address the detectors could not
# read. Alone it could be a person quoting a report; `rules/loops.py` wants a report's
# subject as well.
PHRASE_ONLY = "report-phrase"
_LONG_PHRASE = 20  # shorter ones ("your message", "del") are common words


def find_report(msg: email.message.Message) -> str:
    """The name of the report format `msg` is written in, `PHRASE_ONLY`, or "" (none)."""
    try:
        pruned = _prune(msg, [MAX_PARTS, MAX_TEXT_CHARS], 0)
    except Exception:  # noqa: BLE001 - a tree the email package cannot copy is no report
        return ""
    if pruned is None:
        return ""
    text: str | None = None
    sender = str(msg.get("from", "")).lower()
    types = {part.get_content_type() for part in pruned.walk()}
    for detector in _DETECTORS:
        word = _FROM_WORDS.get(detector)
        if word is not None and word not in sender:
            continue
        part = _NEEDS_PART.get(detector)
        if part is not None and part not in types:
            continue
        phrases = _PHRASES.get(detector)
        if phrases is not None:
            if text is None:
                text = _text_of(pruned)
            if not any(phrase in text for phrase in phrases):
                continue
        try:
            temporary, permanent = detector().process(pruned)
        except Exception:
            log.debug("bounce detector %s raised", detector.__name__, exc_info=True)
            continue
        if temporary or permanent:
            return detector.__name__.lower()
    if text is None:
        text = _text_of(pruned)
    if any(len(phrase) >= _LONG_PHRASE and phrase in text
           for phrases in _PHRASES.values() for phrase in phrases):
        return PHRASE_ONLY
    return ""


def _text_of(pruned: email.message.Message) -> str:
    """The pruned tree's text, lower case; "" when the stdlib cannot read it (a payload
    holding a lone surrogate outside surrogateescape's range raises in get_payload)."""
    try:
        return "".join(body_line_iterator(pruned)).lower()
    except Exception:  # noqa: BLE001 - unreadable text is no report, and no reason to stop
        return ""


def _prune(part: email.message.Message, budget: list[int], depth: int
           ) -> email.message.Message | None:
    """A copy of `part` with only what reports are written in (see the module's doc);
    `budget` is [parts, characters of text] left."""
    if budget[0] <= 0 or depth > MAX_DEPTH:
        return None
    budget[0] -= 1
    ctype = part.get_content_type()
    copy = email.message.Message()
    copy._headers = list(part._headers)  # type: ignore[attr-defined]  # shared str values
    unixfrom = part.get_unixfrom()
    if unixfrom is not None:  # a new Message has none already
        copy.set_unixfrom(unixfrom)
    copy.preamble, copy.epilogue = None, None
    payload = part.get_payload()
    if ctype == "message/delivery-status" and isinstance(payload, list):
        copy.set_payload(payload[:MAX_PARTS])
    elif part.is_multipart() and isinstance(payload, list):
        if ctype == "message/rfc822":
            return None
        children = [_prune(child, budget, depth + 1) for child in payload
                    if isinstance(child, email.message.Message)]
        copy.set_payload([child for child in children if child is not None])
    elif part.get_content_maintype() == "text" and isinstance(payload, str):
        if len(payload) > budget[1]:
            # At a line end, so that base64 and quoted-printable still decode.
            payload = payload[:payload.rfind("\n", 0, budget[1]) + 1]
        budget[1] -= len(payload)
        copy.set_payload(payload)
    else:
        copy.set_payload("")
    return copy
