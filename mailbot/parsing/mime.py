"""Raw message bytes -> `MimeMail`: decoded headers, addresses, date, body text, attachments.

Takes the bytes exactly as spooled and hands on a `MimeMail` whose `body` is plain text
(HTML-only mail already converted by `htmltext.py`, quotes marked with `>`), for
`quotes.py` to split. Nothing in here raises for any input: every oddity becomes a line
in `defects` and the best reading we can make.

Two libraries, each where it is better:

- stdlib `email` (compat32 policy) walks the MIME tree and decodes the parts. We need the
  tree itself: in a multipart/alternative we read the text/plain twin and only fall back
  to the HTML one, while in a multipart/mixed every inline text part counts. mail-parser
  flattens all parts into `text_plain` / `text_html` lists and loses that structure, and it
  names unnamed attachments with random strings, which would make parsing the same bytes
  twice give different results. compat32 is also the most lenient policy: it records
  defects where `policy.default` raises on malformed headers.
- mail-parser reads the address headers (`From`, `To`, `Cc`) and the `Date`: its address
  parser recovers mailboxes from malformed headers and says when it could not, its date
  parser handles the many broken `Date:` formats and returns an aware datetime. Its
  readers are given the headers we already parsed (not a whole `MailParser`, which would
  walk and decode every part a second time); structural defects (boundaries, base64
  padding, malformed headers) are listed from our tree in the form mail-parser uses.
"""

from __future__ import annotations

import codecs
import datetime as dt
import email
import email.header
import email.message
import email.utils
import hashlib
import logging
import re
from dataclasses import dataclass, field

from mailbot.models import Attachment
from mailbot.parsing.reports import find_report

log = logging.getLogger(__name__)

# Body text given to quote stripping and field reading (docs/limits.md): fields live in
# the first part of the new text, so the start is all that is analysed. The raw message
# is still stored whole.
MAX_TEXT = 256 * 1024  # characters
MAX_TEXT_LINES = 20_000
# Lines of a message given to the stdlib parser, which holds every line as an object
# (~80 bytes each: 3 million soft line breaks took 250 MB). A 10 MB message of base64 has
# 135,000 lines; what lies beyond the cut is not read (nor listed as attachments).
MAX_LINES = 200_000
MAX_ATTACHMENT_TEXT = 1024 * 1024  # characters kept of a text attachment
MAX_DEPTH = 30  # MIME nesting we follow; deeper parts are ignored (and reported)
# Header characters decoded. The stdlib's decode_header is quadratic in the number of
# encoded words (it pops from the front of a list), so an absurd header is cut first.
MAX_HEADER = 16 * 1024
MAX_HEADER_LINES = 10_000  # top-level header lines parsed; the rest are dropped
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_FOLD = re.compile(r"\r?\n(?=[ \t])|\r(?=[ \t])")
_MSGID = re.compile(r"<([^<>\s]{1,500})>")
_ONE_BRACKETED_ID = re.compile(r"\s*<([^<>\s]{1,500})>\s*")
_SANE_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,250}@[\x21-\x3b\x3d\x3f-\x7e]{1,250}")
_FLOWED_QUOTE = re.compile(r">+")
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass
class MimeMail:
    """What the MIME layer could read; plain data for the next stages."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    # The same headers as written: unfolded, no RFC 2047 decoding (identity is read here).
    raw_headers: list[tuple[str, str]] = field(default_factory=list)
    subject: str = ""
    message_id: str = ""
    key: str = ""
    from_address: str = ""
    from_name: str = ""
    envelope_sender: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: dt.datetime | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    content_type: str = "text/plain"
    body: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    report: str = ""  # the delivery-report format of its text (reports.py), "" if none


# ---------------------------------------------------------------- text decoding


def decode_bytes(data: bytes, charset: str | None, defects: list[str], what: str) -> str:
    """`data` as text in `charset`; never raises, notes what had to be guessed or replaced."""
    name = (charset or "").strip().strip('"').lower()
    if name in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown", "default"):
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            pass
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            defects.append(f"{what}: 8-bit text without a usable charset, read as Windows-1252")
            return data.decode("cp1252", "replace")
    try:
        codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        defects.append(f"{what}: unknown charset {name[:40]!r}, read as UTF-8")
        return data.decode("utf-8", "replace")
    try:
        return data.decode(name)
    except (UnicodeError, LookupError, ValueError, TypeError):
        pass
    try:
        text = data.decode(name, "replace")
    except Exception:  # a codec that is not a text encoding (e.g. "rot13")
        defects.append(f"{what}: charset {name[:40]!r} is not a text encoding, read as UTF-8")
        return data.decode("utf-8", "replace")
    defects.append(f"{what}: bytes invalid in {name[:40]}, replaced")
    return text


def _unsurrogate(value: str) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogates; read them as UTF-8 (RFC 6532)."""
    if not _SURROGATE.search(value):
        return value
    data = value.encode("ascii", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def decode_header_value(value: object, defects: list[str] | None = None) -> str:
    """A header value unfolded, RFC 2047 encoded words decoded; never raises."""
    defects = defects if defects is not None else []
    if isinstance(value, email.header.Header):
        try:
            value = str(value)
        except Exception:
            value = ""
    text = _unsurrogate(str(value))
    if len(text) > MAX_HEADER:
        defects.append(f"a header longer than {MAX_HEADER} characters was cut")
        text = text[:MAX_HEADER]
    text = _FOLD.sub("", text)
    if "=?" not in text:
        return text.strip()
    try:
        chunks = email.header.decode_header(text)
    except Exception:
        defects.append("a header has malformed encoded words; kept as written")
        return text.strip()
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            out.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            out.append(decode_bytes(chunk, charset, defects, "header"))
    return "".join(out).strip()


def one_line(text: str) -> str:
    """`text` without CR, LF or other control characters, blanks collapsed (safe for headers)."""
    return " ".join(_CONTROL.sub(" ", text).split())


# ---------------------------------------------------------------- identity


def _cap_header_lines(raw: bytes, defects: list[str]) -> bytes:
    """`raw` with at most MAX_HEADER_LINES lines of top-level header.

    The stdlib keeps every header as Python objects: a 10 MB message of 2.5 million empty
    headers took 10 s and 700 MB to parse (tests/system/test_hostile.py). No real
    mail has thousands of header lines, so the rest are dropped before parsing."""
    head, body = _split_raw(raw)
    if head.count(b"\n") < MAX_HEADER_LINES:
        return raw
    cut = -1
    for _ in range(MAX_HEADER_LINES):
        cut = head.index(b"\n", cut + 1)
    defects.append(f"more than {MAX_HEADER_LINES} header lines; the rest were ignored")
    return head[:cut + 1] + b"\r\n" + body


def _cap_lines(raw: bytes, defects: list[str]) -> bytes:
    """`raw` cut after MAX_LINES lines (see MAX_LINES)."""
    if raw.count(b"\n") <= MAX_LINES:
        return raw
    cut = -1
    for _ in range(MAX_LINES):
        cut = raw.index(b"\n", cut + 1)
    defects.append(f"more than {MAX_LINES} lines; the rest was not read")
    return raw[:cut + 1]


def _split_raw(raw: bytes) -> tuple[bytes, bytes]:
    """Header block and body of the raw bytes, split at the first empty line."""
    positions = [p for p in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if p >= 0]
    if not positions:
        return raw, b""
    cut = min(positions)
    sep = 4 if raw[cut:cut + 4] == b"\r\n\r\n" else 2
    return raw[:cut], raw[cut + sep:]


def digest_key(raw: bytes, msg: email.message.Message | None, *,
               with_message_id: bool = False) -> str:
    """A dedupe key for mail without a usable Message-ID.

    It covers From, Date, Subject and the body, not the whole bytes: the same message
    delivered again through another hop gains Return-Path/Received headers in front.
    Line endings are normalised for the same reason. `with_message_id`: the Message-ID
    header as written too (one that is there but unusable), so two messages that differ
    only there are two messages.
    """
    head, body = _split_raw(raw)
    h = hashlib.sha256()
    names = ("from", "date", "subject") + (("message-id",) if with_message_id else ())
    for name in names:
        value = ""
        if msg is not None:
            try:
                got = msg.get(name)
                value = "" if got is None else " ".join(str(got).split())
            except Exception:
                value = ""
        data = value.encode("utf-8", "surrogateescape")
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    body = body.replace(b"\r\n", b"\n")
    h.update(b"body\0" + str(len(body)).encode() + b"\0" + body)
    return "sha256:" + h.hexdigest()


def message_ids(value: str) -> tuple[str, ...]:
    """The message-ids in a Message-ID / In-Reply-To / References value, without brackets."""
    found = _MSGID.findall(value[:20000])
    if not found:  # some clients forget the brackets
        found = [w.strip("<>,;") for w in value[:20000].split() if "@" in w]
    seen: list[str] = []
    for mid in found:
        if mid and mid not in seen:
            seen.append(mid)
    return tuple(seen)


def message_key(value: str, raw: bytes, msg: email.message.Message | None) -> str:
    """The dedupe key: the Message-ID when the header is exactly one `<left@right>`;
    else a digest of the message and of that header as written. Any looser reading
    (say, the last word with an `@` of `<note a@b>` or `a@b (resent)`) can give two
    different messages one key, and the second would be dropped as a duplicate."""
    m = _ONE_BRACKETED_ID.fullmatch(value)
    if m and _SANE_ID.fullmatch(m.group(1)):
        return m.group(1)
    return digest_key(raw, msg, with_message_id=bool(value.strip()))


def sane_message_id(value: str) -> str:
    """The Message-ID without brackets if it looks like one (`left@right`), else ""."""
    ids = message_ids(value)
    if len(ids) != 1:
        return ""
    return ids[0] if _SANE_ID.fullmatch(ids[0]) else ""


# ---------------------------------------------------------------- body


def unflow(text: str, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed soft line breaks (and space-stuffing)."""
    out: list[str] = []
    pending: list[str] = []  # pieces of a flowed paragraph (a list: joining is linear)
    pending_depth = -1
    for line in text.split("\n"):
        m = _FLOWED_QUOTE.match(line)
        depth = m.end() if m else 0
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        if pending and depth != pending_depth:
            out.append(_requote(pending_depth, "".join(pending)))
            pending = []
        if content.endswith(" ") and content != "-- ":
            pending.append(content[:-1] if delsp else content)
            pending_depth = depth
            continue
        if pending:
            pending.append(content)
            content = "".join(pending)
            pending = []
        out.append(_requote(depth, content))
    if pending:
        out.append(_requote(pending_depth, "".join(pending)))
    return "\n".join(out)


def _requote(depth: int, content: str) -> str:
    return (">" * depth + " " + content) if depth else content


def _payload_bytes(part: email.message.Message, defects: list[str]) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:
        defects.append(f"{part.get_content_type()}: transfer encoding unreadable ({exc!r:.60})")
        payload = part.get_payload()
        data = payload.encode("ascii", "surrogateescape") if isinstance(payload, str) else b""
    if data is None:
        return b""
    return data if isinstance(data, bytes) else bytes(data)


def _part_text(part: email.message.Message, defects: list[str]) -> str:
    data = _payload_bytes(part, defects)
    text = decode_bytes(data, part.get_content_charset(), defects, part.get_content_type())
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_subtype() == "html":
        # Imported here: html.parser is a cost every one-message process would pay for
        # the few messages that are HTML only.
        from mailbot.parsing.htmltext import html_to_text

        text, html_defects = html_to_text(text)
        defects.extend(html_defects)
    elif _param(part, "format").lower() == "flowed":
        text = unflow(text, _param(part, "delsp").lower() == "yes")
    return text


def _param(part: email.message.Message, name: str) -> str:
    """A Content-Type parameter, "" when absent; in RFC 2231 form (`format*=us-ascii''flowed`)
    the email package gives a (charset, language, value) tuple: its value is decoded."""
    value = part.get_param(name)
    if isinstance(value, tuple):
        return email.utils.collapse_rfc2231_value(value)
    return value or ""


def _is_attachment(part: email.message.Message) -> bool:
    # str(): compat32 hands back a Header object, not a str, for a value with 8-bit bytes
    # (a fuzzed "Content-Disposition: in\x83line" raised here; tests/system/test_fuzz.py).
    disposition = str(part.get("content-disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    if part.get_content_maintype() not in ("text", "multipart"):
        return True
    if part.get_content_type() not in ("text/plain", "text/html"):
        return True  # text/calendar, text/csv, …: files, not the message
    return bool(part.get_filename()) and disposition != "inline"


def _attachment(part: email.message.Message, defects: list[str]) -> Attachment:
    try:
        filename = decode_header_value(part.get_filename() or "", defects)
    except Exception:
        filename = ""
    ctype = part.get_content_type()
    if part.is_multipart() or ctype == "message/rfc822":
        try:
            size = len(part.as_bytes())
        except Exception:
            size = 0
        return Attachment(filename=one_line(filename), content_type=ctype, size=size)
    data = _payload_bytes(part, defects)
    text = None
    if part.get_content_maintype() == "text":
        text = decode_bytes(data[:MAX_ATTACHMENT_TEXT * 4], part.get_content_charset(), defects,
                            filename or ctype)[:MAX_ATTACHMENT_TEXT]
    return Attachment(filename=one_line(filename), content_type=ctype, size=len(data), text=text)


def _collect(part: email.message.Message, depth: int, texts: list[str],
             attachments: list[Attachment], defects: list[str]) -> None:
    """Walk the MIME tree: inline text into `texts`, everything else into `attachments`."""
    if depth > MAX_DEPTH:
        defects.append(f"MIME nesting deeper than {MAX_DEPTH} levels; inner parts ignored")
        return
    ctype = part.get_content_type()
    if part.is_multipart():
        children = [c for c in (part.get_payload() or []) if isinstance(c, email.message.Message)]
        if ctype == "message/rfc822":
            attachments.append(_attachment(part, defects))
            return
        if part.get_content_subtype() == "alternative" and children:
            chosen = _choose_alternative(children, defects)
            for child in children:
                if child is chosen:
                    _collect(child, depth + 1, texts, attachments, defects)
            return
        for child in children:
            _collect(child, depth + 1, texts, attachments, defects)
        return
    if part.get_content_maintype() == "multipart":
        # A multipart whose boundary never appears: its body is all we have.
        defects.append(f"{ctype} without its parts; body read as text")
        data = _payload_bytes(part, defects)
        text = decode_bytes(data, part.get_content_charset(), defects, ctype)
        if text.strip():
            texts.append(text.replace("\r\n", "\n").replace("\r", "\n"))
        return
    if _is_attachment(part):
        attachments.append(_attachment(part, defects))
        return
    text = _part_text(part, defects)
    if text.strip():
        texts.append(text)


def _choose_alternative(children: list[email.message.Message], defects: list[str]
                        ) -> email.message.Message:
    """The text/plain twin when it has text, else the HTML one, else the last alternative."""
    for wanted in ("text/plain", "text/html"):
        for child in children:
            if child.get_content_type() == wanted and not _is_attachment(child):
                probe: list[str] = []
                if _payload_bytes(child, probe).strip():
                    return child
    for child in reversed(children):
        if child.is_multipart():
            return child
    return children[-1]


# ---------------------------------------------------------------- the stage


def read_mime(raw: bytes) -> MimeMail:
    """Everything the MIME layer can read from `raw`; never raises."""
    out = MimeMail()
    msg: email.message.Message | None
    whole = raw  # the dedupe key covers the whole body
    raw = _cap_lines(_cap_header_lines(raw, out.defects), out.defects)
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # RecursionError on absurd nesting, mostly
        out.defects.append(f"MIME structure unreadable ({type(exc).__name__}); read as text")
        msg = None
    if msg is None:
        try:
            from email.parser import BytesHeaderParser
            msg = BytesHeaderParser().parsebytes(_split_raw(raw)[0] + b"\n\n")
        except Exception:
            msg = None
        _stdlib_fill(out, _read_headers(out, msg, whole))
        out.body = decode_bytes(_split_raw(raw)[1], None, out.defects, "body")
        return out

    first = _read_headers(out, msg, whole)
    out.content_type = msg.get_content_type()
    out.report = find_report(msg)

    texts: list[str] = []
    try:
        _collect(msg, 0, texts, out.attachments, out.defects)
    except RecursionError:
        out.defects.append("MIME structure too deep; body read as text")
        texts = [decode_bytes(_split_raw(raw)[1], None, out.defects, "body")]
    if not texts and msg.is_multipart():
        recovered = _epilogue_text(msg, out.defects)
        if recovered:
            texts.append(recovered)
    out.body = "\n\n".join(texts)
    if any(len(str(v)) > MAX_HEADER for _, v in msg.raw_items()):
        # mail-parser decodes every header with the same quadratic stdlib function.
        out.defects.append("headers too large for mail-parser; addresses read by the stdlib")
        _stdlib_defects(msg, out.defects)
    elif not _read_with_mailparser(out, msg):
        _stdlib_defects(msg, out.defects)  # (on success it has read them already)
    _stdlib_fill(out, first)  # only where mail-parser found nothing
    return out


def _stdlib_defects(msg: email.message.Message, defects: list[str]) -> None:
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        for defect in getattr(part, "defects", []):
            defects.append(f"{type(defect).__name__}: {(defect.__doc__ or '').strip()}")
        if depth < MAX_DEPTH and part.is_multipart():
            stack.extend((c, depth + 1) for c in part.get_payload()
                         if isinstance(c, email.message.Message))


def _read_headers(out: MimeMail, msg: email.message.Message | None, raw: bytes
                  ) -> dict[str, str]:
    """Headers, subject, ids and key into `out`; returns each header's first value."""
    if msg is None:
        out.key = digest_key(raw, None)
        return {}
    for name, value in msg.raw_items():
        try:
            # No CR/LF/NUL survives: values may be copied into outgoing headers.
            decoded = _CONTROL.sub(" ", decode_header_value(value, out.defects)).strip()
        except Exception:
            decoded = ""
        out.headers.append((name.lower().strip(), decoded))
        out.raw_headers.append((name.lower().strip(), _raw_value(value)))
    first: dict[str, str] = {}
    for name, value in out.headers:
        first.setdefault(name, value)
    out.subject = one_line(first.get("subject", ""))
    out.message_id = sane_message_id(first.get("message-id", ""))
    out.key = message_key(first.get("message-id", ""), raw, msg)
    if "return-path" in first:
        rp = first["return-path"].strip()
        addr = email.utils.parseaddr(rp)[1] if rp not in ("<>", "") else ""
        # Postfix's pipe(8) writes the null sender as "MAILER-DAEMON" (no domain) unless
        # the transport sets null_sender=: that is a bounce's empty envelope too.
        if addr.lower() == "mailer-daemon":
            addr = ""
        out.envelope_sender = one_line(addr)
    out.in_reply_to = message_ids(first.get("in-reply-to", ""))
    out.references = message_ids(" ".join(v for n, v in out.headers if n == "references"))
    return first


def _stdlib_fill(out: MimeMail, first: dict[str, str]) -> None:
    """The stdlib's reading of what mail-parser could not read (or was not asked to);
    `first`: the first value of each decoded header, as `_read_headers` returned it.
    Addresses are read from the raw values (`_first_raw`), never from `first`."""
    raw = _first_raw(out)
    if not out.from_address and "from" in raw:
        out.from_name, out.from_address = _author(_stdlib_pairs(raw["from"]), out.defects)
    out.to = out.to or _stdlib_addresses(raw.get("to", ""))
    out.cc = out.cc or _stdlib_addresses(raw.get("cc", ""))
    if out.date is None:
        try:
            date = email.utils.parsedate_to_datetime(first.get("date", ""))
            out.date = date if date.tzinfo else date.replace(tzinfo=dt.timezone.utc)
        except Exception:
            out.date = None


def _raw_value(value: object) -> str:
    """A header value as written: unfolded, raw 8-bit read as UTF-8, control characters
    blanked, cut at MAX_HEADER; encoded words left encoded."""
    text = _unsurrogate(str(value))[:MAX_HEADER]
    if not text.isprintable():  # folds, tabs, controls; most values have none
        text = _CONTROL.sub(" ", _FOLD.sub("", text))
    return text.strip()


def _first_raw(out: MimeMail) -> dict[str, str]:
    """The first raw value of each address header (From, To, Cc)."""
    first: dict[str, str] = {}
    for name, value in out.raw_headers:
        if name in ("from", "to", "cc"):
            first.setdefault(name, value)
    return first


def _stdlib_pairs(value: str) -> list[tuple[str, str]]:
    try:
        return email.utils.getaddresses([value])
    except Exception:
        return []


def _stdlib_addresses(value: str) -> tuple[str, ...]:
    return tuple(a for _, a in _mailboxes(_stdlib_pairs(value)))


def _mailboxes(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(display name, address) of each usable mailbox a parser read from a raw address
    header. The address comes from the raw value and only then is the name decoded: an
    encoded word may hold text like "<alice@example.com>" that, decoded first, would pass
    for the address (RFC 2047 section 5 keeps encoded words out of addresses)."""
    out = []
    for name, addr in pairs:
        addr = one_line(addr or "").lower()
        if "@" not in addr or "=?" in addr:
            continue
        name = one_line(decode_header_value(name or ""))
        out.append(("" if name.lower() == addr else name, addr))
    return out


def _author(pairs: list[tuple[str, str]], defects: list[str]) -> tuple[str, str]:
    """The one mailbox of a From-like header; ("", "") when it names none or several
    (several authors, or an ambiguous header: nobody can say which one wrote)."""
    found = _mailboxes(pairs)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        defects.append(f"From names {len(found)} mailboxes; no single author")
    return "", ""


def read_mailbox(value: str) -> tuple[str, str]:
    """(display name, lower-case address) of the single mailbox in a raw address header
    value such as From or X-Original-From; ("", "") when there is not exactly one."""
    try:
        from mailparser.utils import get_addresses
        pairs = get_addresses(_raw_value(value), decode_names=False)
    except Exception:
        pairs = _stdlib_pairs(_raw_value(value))
    return _author(pairs, [])


def _read_with_mailparser(out: MimeMail, msg: email.message.Message) -> bool:
    """Addresses and date as mail-parser reads them, with its diagnostics; False if it
    could not.

    Its readers are called directly (`utils.get_addresses`, `dates.parse_mail_date`), the
    way `MailParser` itself calls them for From/To/Cc and Date, instead of building a
    `MailParser`: that object also walks and decodes every MIME part again, parses every
    Received header and indexes all headers, which cost 0.16 ms per message for results
    we do not read (the tree walk is ours). Structural defects come from the stdlib
    tree, in the form mail-parser reports them."""
    try:
        from mailparser.dates import date_diagnostics, parse_mail_date
        from mailparser.utils import get_addresses
    except Exception as exc:
        out.defects.append(f"mail-parser unavailable ({type(exc).__name__})")
        return False
    try:
        first: dict[str, object] = {}
        # Addresses from the raw values (encoded words still encoded, see `_mailboxes`),
        # the date as written (`raw_items()`).
        raw_first = _first_raw(out)
        for key in ("from", "to", "cc"):
            if key in raw_first:
                first[key] = raw_first[key]
        for name, value in msg.raw_items():
            if name.lower() == "date":
                first["date"] = value
                break
        found: dict[str, tuple[str, ...]] = {}
        for key in ("from", "to", "cc"):
            if key not in first:
                continue
            diagnostics: list[dict] = []
            pairs = get_addresses(first[key], defects=diagnostics, decode_names=False)
            if key == "from":
                out.from_name, out.from_address = _author(pairs, out.defects)
            else:
                found[key] = tuple(a for _, a in _mailboxes(pairs))
            for d in diagnostics:
                out.defects.append(one_line(f"AddressHeaderDefect: {key}: {d.get('reason')}")
                                   [:200])
        out.to = found.get("to") or out.to
        out.cc = found.get("cc") or out.cc
        if "date" in first:
            result = parse_mail_date(first["date"])
            date = result.value
            if isinstance(date, dt.datetime):
                out.date = date if date.tzinfo else date.replace(tzinfo=dt.timezone.utc)
            for d in date_diagnostics(result, first["date"], "date", 0):
                out.defects.append(one_line(f"DateHeaderDefect: {d.get('reason')}")[:200])
    except Exception as exc:
        out.defects.append(f"mail-parser result unusable ({type(exc).__name__})")
        return False
    _stdlib_defects(msg, out.defects)
    return True


def _epilogue_text(msg: email.message.Message, defects: list[str]) -> str:
    """Text left after a broken closing boundary (mail-parser's trick, on our own tree).

    The preamble is not used: it is the "This is a multi-part message" boilerplate.
    """
    epilogue = msg.epilogue or ""
    if epilogue.strip():
        defects.append("no readable MIME part; text after the last boundary was used")
        return _unsurrogate(epilogue)
    return ""
