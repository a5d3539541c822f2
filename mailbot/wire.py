"""Outgoing mail on the wire: header fields folded and encoded, MIME parts assembled.

Takes header values (already one line: `compose.clean_header` removed CR, LF and other
control characters) and bodies as text; hands back the RFC 5322 message as bytes with
CRLF line ends, 7-bit clean whenever the addresses are (RFC 2047 encoded words for
non-ASCII header text, quoted-printable or base64 for non-ASCII bodies).

Written for the composer instead of `email.message.EmailMessage`: building and
serialising an EmailMessage cost ~0.9 ms per reply (its header registry re-parses every
value we set, and `policy.default` folds them again), more than all of mailbot's other
per-message work together. What it did for us is small and fixed, and is done here:

- unstructured text (Subject): folded at blanks to 78 characters; ASCII words are written
  as they are and each run of other words becomes base64 encoded words (RFC 2047 section
  4.1, each at most 75 characters, split between characters, never inside one);
- mailboxes: `email.utils.formataddr` for an ASCII name (quoted when it holds specials),
  encoded words of at most 75 characters for any other;
- message ids: only `<id>` with printable ASCII and no blanks or brackets is written;
- bodies: `text/*; charset="utf-8"`, 7bit when ASCII with lines under 990 octets, else
  quoted-printable; attachments base64 at 76 columns;
- multipart: text (+ HTML as multipart/alternative) (+ attachments as multipart/mixed),
  the same shape EmailMessage produced, with a boundary derived from the Message-ID (a
  re-run after a crash makes the same bytes) and checked against the encoded content.

`tests/test_wire.py` parses the output back with the stdlib's strict
`policy.default` for arbitrary text (hypothesis) and checks every value and the absence
of defects, injected headers and lines over 998 octets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from email.utils import formataddr, parseaddr
from typing import Iterable, Sequence

CRLF = "\r\n"
MAX_LINE = 78  # RFC 5322 2.1.1: SHOULD; the hard limit is 998
_WORD_BYTES = 42  # 42 octets -> 56 base64 characters -> a 68-character encoded word
# Printable ASCII without < > or blanks, and never "=?": readers (Python's email package
# among them) decode an encoded-word look-alike inside a msg-id, and an id that decodes to
# a line break is no id to thread by. Such an id is left out of In-Reply-To/References.
_MSG_ID = re.compile(r"(?!.*=\?)[\x21-\x3b\x3d\x3f-\x7e]+")


def _fold_words(name: str, words: Sequence[str], sep: str = " ") -> str:
    """`Name: w1 w2 ...` folded before a word when a line would pass MAX_LINE."""
    lines: list[str] = []
    line = f"{name}:"
    for k, word in enumerate(words):
        piece = (" " if k == 0 else sep) + word
        if k and len(line) + len(piece) > MAX_LINE:
            lines.append(line + sep.rstrip())
            line = " " + word
        else:
            line += piece
    lines.append(line)
    return CRLF.join(lines)


def _encoded_words(text: str) -> list[str]:
    """`text` as base64 encoded words, each whole characters of at most _WORD_BYTES."""
    words: list[str] = []
    chunk: list[bytes] = []
    size = 0
    for ch in text:
        data = ch.encode("utf-8", "replace")  # a lone surrogate becomes "?"
        if size + len(data) > _WORD_BYTES and chunk:
            words.append(_b_word(b"".join(chunk)))
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    if chunk:
        words.append(_b_word(b"".join(chunk)))
    return words


def _b_word(data: bytes) -> str:
    return "=?utf-8?b?" + base64.b64encode(data).decode("ascii") + "?="


def text_header(name: str, value: str) -> str:
    """An unstructured header field (RFC 5322 3.2.5, RFC 2047) from a one-line value.

    ASCII words stay as they are (a filter or a person reading the raw mail still sees
    `[INC-7] Declared:`); each run of words with other characters becomes encoded words.
    Decoders drop the blanks between two encoded words, so the blanks inside a run travel
    inside its words, and the single blank between a run and a plain word is kept."""
    if value.isascii():
        return _fold_words(name, value.split(" ")) if value else f"{name}: "
    words = value.split(" ")
    if "" in words:  # leading, trailing or doubled blanks: keep them exactly, all encoded
        return _fold_words(name, _encoded_words(value))
    out: list[str] = []
    run: list[str] = []
    for word in words:
        if word.isascii():
            if run:
                out.extend(_encoded_words(" ".join(run)))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out.extend(_encoded_words(" ".join(run)))
    return _fold_words(name, out)


def mailbox(name: str, address: str) -> str:
    """`Name <address>` with the name quoted or encoded as needed; `address` alone."""
    if not name:
        return address
    if not address.isascii():  # only SMTPUTF8 can carry it (RFC 6532): no name then
        return address
    if name.isascii():
        return formataddr((name, address))  # quoted when it holds specials
    # formataddr would make one encoded word of any length (a long name passed 998
    # octets); ours are at most 75 characters each, folded between words.
    return (CRLF + " ").join(_encoded_words(name)) + f" <{address}>"


def address_header(name: str, addresses: Iterable[str]) -> str:
    """To/Cc: bare addresses or `Name <address>` entries, folded between entries."""
    entries = []
    for entry in addresses:
        if "<" in entry:
            display, addr = parseaddr(entry)
            entry = mailbox(display, addr) if addr else ""
        if entry:
            entries.append(entry)
    return _fold_words(name, entries, sep=", ") if entries else ""


def msgid_header(name: str, ids: Iterable[str]) -> str:
    """Message-ID / In-Reply-To / References: `<id>` for each well-formed id, folded."""
    kept = [f"<{i}>" for i in ids if _MSG_ID.fullmatch(i)]
    return _fold_words(name, kept) if kept else ""


def _lines(text: str) -> str:
    """Any of CRLF, CR, LF -> LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_part(body: str, subtype: str = "plain") -> tuple[list[str], bytes]:
    """Headers and encoded body of a text/SUBTYPE part in UTF-8."""
    text = _lines(body)
    if text.isascii() and all(len(line) < 990 for line in text.split("\n")):
        cte, data = "7bit", text.replace("\n", CRLF).encode("ascii")
    else:
        cte = "quoted-printable"
        data = binascii.b2a_qp(text.encode("utf-8", "replace"), istext=True)
        data = data.replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return [f'Content-Type: text/{subtype}; charset="utf-8"',
            f"Content-Transfer-Encoding: {cte}"], data


def attachment_part(filename: str, content_type: str, data: bytes) -> tuple[list[str], bytes]:
    """Headers and base64 body of an attachment. `content_type` may carry `method=` and
    `charset=` parameters ("text/calendar; method=REQUEST"): an iTIP part (RFC 6047) is
    what makes a calendar treat it as an invitation, and it is shown inline."""
    media, *params = content_type.split(";")
    maintype, _, subtype = media.partition("/")
    ctype = f"{_token(maintype) or 'application'}/{_token(subtype) or 'octet-stream'}"
    kept = []
    for param in params:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() in ("method", "charset") and _token(value):
            kept.append(f"{name.strip().lower()}={_token(value).upper()}")
    disposition = "inline" if any(k.startswith("method=") for k in kept) else "attachment"
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return ["Content-Type: " + "; ".join([ctype, *kept]), "Content-Transfer-Encoding: base64",
            f"Content-Disposition: {disposition}; {_filename_param(filename)}"], encoded


def _token(value: str) -> str:
    return "".join(c for c in value.lower() if c.isascii() and (c.isalnum() or c in "+-."))


def _filename_param(filename: str) -> str:
    """filename="x" for plain ASCII; RFC 2231 filename*0*=utf-8''...; filename*1*=...
    otherwise, in pieces that keep each line short."""
    if filename.isascii() and not any(c in filename for c in '"\\'):
        return f'filename="{filename}"'
    from urllib.parse import quote

    pieces = [""]
    for ch in filename:  # whole characters per piece: each is decoded on its own
        quoted = quote(ch.encode("utf-8", "replace"), safe="")
        if len(pieces[-1]) + len(quoted) > 60:
            pieces.append("")
        pieces[-1] += quoted
    params = [f"filename*{k}*={'utf-8' + chr(39) * 2 if k == 0 else ''}{piece}"
              for k, piece in enumerate(pieces)]
    return (";" + CRLF + " ").join(params)


def assemble(headers: list[str], text: str, *, html: str | None = None,
             attachments: Iterable[tuple[str, str, bytes]] = (), seed: str = "") -> bytes:
    """The whole message: `headers` (already formatted fields), MIME-Version and the body
    parts. `seed` (the Message-ID) makes the boundaries deterministic."""
    parts = [text_part(text)]
    if html is not None:
        parts.append(text_part(html, "html"))
    files = [attachment_part(*a) for a in attachments]
    content = b"".join(data for _, data in parts + files)
    if html is None and not files:
        part_headers, body = parts[0]
        return _join([*headers, "MIME-Version: 1.0", *part_headers], body)
    boundaries = _boundaries(seed, content)
    if html is not None:
        body_headers, body = _multipart("alternative", next(boundaries), parts)
    else:
        body_headers, body = parts[0]
    if files:
        body_headers, body = _multipart("mixed", next(boundaries),
                                        [(body_headers, body), *files])
    return _join([*headers, "MIME-Version: 1.0", *body_headers], body)


def _boundaries(seed: str, content: bytes):
    n = 0
    while True:
        n += 1
        digest = hashlib.sha1(f"{seed}\0{n}".encode("utf-8", "surrogateescape")).hexdigest()
        boundary = f"=_mailbot_{digest[:24]}"
        if boundary.encode("ascii") not in content:
            yield boundary


def _multipart(subtype: str, boundary: str, parts: list[tuple[list[str], bytes]]
               ) -> tuple[list[str], bytes]:
    out = bytearray()
    for part_headers, data in parts:
        out += f"--{boundary}{CRLF}".encode("ascii")
        out += (CRLF.join(part_headers) + CRLF + CRLF).encode("ascii")
        out += data
    out += f"--{boundary}--{CRLF}".encode("ascii")
    return [f'Content-Type: multipart/{subtype}; boundary="{boundary}"'], bytes(out)


def _join(headers: list[str], body: bytes) -> bytes:
    head = CRLF.join(h for h in headers if h) + CRLF + CRLF
    return head.encode("utf-8", "replace") + body
