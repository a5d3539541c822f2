"""One raw `Authentication-Results:` value -> `AuthResults` (RFC 8601 section 2.2).

Takes the header value exactly as written (unfolded, never RFC 2047-decoded: the MTA that
strips look-alikes of its own header compares the raw authserv-id, so we must too) and
hands on the authserv-id and the results, one `ResInfo` per method. Pure; never raises;
None for a value that does not follow the grammar:

    authres-payload = [CFWS] authserv-id [ CFWS authres-version ]
                      ( no-result / 1*resinfo ) [CFWS]
    authserv-id     = value                     ; token / quoted-string (RFC 2045)
    no-result       = [CFWS] ";" [CFWS] "none"
    resinfo         = [CFWS] ";" methodspec [ CFWS reasonspec ] [ CFWS 1*propspec ]
    methodspec      = [CFWS] method [CFWS] "=" [CFWS] result
    method          = Keyword [ [CFWS] "/" [CFWS] method-version ]
    reasonspec      = "reason" [CFWS] "=" [CFWS] value
    propspec        = ptype [CFWS] "." [CFWS] property [CFWS] "=" pvalue
    pvalue          = [CFWS] ( value / [ [ local-part ] "@" ] domain-name ) [CFWS]

Comments (CFWS) nest and may hold ";" and "=" (OpenDKIM writes `(2048-bit key;
unprotected)`), so results are split only at a ";" outside comments and quoted strings,
and a comment never counts as text. Where real MTAs stray from the grammar, the reading
stays on the safe side: an unquoted property value runs to the next blank, ";" or "(" (as
OpenDKIM's `header.b=FL1ODDD/` and rspamd's `smtp.client-ip=2a00:...` need), a
`key=value` without a dot is kept as a property (Microsoft's `action=none`), and a
result that cannot be read is dropped alone, not taken for another one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_VALUE = 16 * 1024  # characters read; an Authentication-Results header is far shorter
_BLANKS = " \t\r\n"
_VALUE_END = frozenset(_BLANKS + ';()"')  # what ends an unquoted property value
# RFC 2045 token: any CHAR except SPACE, CTLs and tspecials.
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_KEYWORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ResInfo:
    """One method's result: `dkim=pass header.d=example.com`."""

    method: str  # lower case: "dkim", "spf", "dmarc", "dkim-atps", ...
    result: str  # lower case: "pass", "fail", "none", ...
    version: str = ""  # the method's version, when written (`dkim/1=pass`)
    reason: str = ""
    properties: tuple[tuple[str, str], ...] = ()  # ("header.d", "example.com"), in order

    def prop(self, name: str) -> str | None:
        """The value of property `name` ("header.d"); None if absent, or if it is stated
        twice with different values (ambiguous: nobody can say which one was checked)."""
        name = name.lower()
        values = {v for k, v in self.properties if k == name}
        return values.pop() if len(values) == 1 else None


@dataclass(frozen=True)
class AuthResults:
    """A whole Authentication-Results value."""

    authserv_id: str  # as written: a quoted id keeps its quotes (it is not the bare token)
    version: str = ""
    results: tuple[ResInfo, ...] = ()
    unreadable: int = 0  # results that did not follow the grammar and were dropped


class _Malformed(Exception):
    pass


class _Cursor:
    """A position in the text, with the grammar's lexical pieces."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_cfws(self) -> None:
        """Blanks and comments; comments nest and may hold quoted-pairs."""
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in _BLANKS:
                self.pos += 1
            elif ch == "(":
                self.pos = _comment_end(text, self.pos)
            else:
                return

    def take(self, pattern: re.Pattern[str]) -> str:
        match = pattern.match(self.text, self.pos)
        if not match:
            return ""
        self.pos = match.end()
        return match.group()

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise _Malformed(f"expected {ch!r} at {self.pos}")
        self.pos += 1

    def quoted_string(self) -> str:
        """The content of the quoted-string starting here, quoted-pairs undone."""
        self.expect('"')
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "\\" and self.pos + 1 < len(text):
                out.append(text[self.pos + 1])
                self.pos += 2
            elif ch == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(ch)
                self.pos += 1
        raise _Malformed("unterminated quoted-string")

    def pvalue(self) -> str:
        """A property or reason value: a quoted-string (optionally `"local"@domain`), or
        the characters up to the next blank, ";", comment or quote."""
        if self.peek() == '"':
            value = self.quoted_string()
            if self.peek() != "@":
                return value
            value += self._run()
            return value
        value = self._run()
        if not value:
            raise _Malformed(f"expected a value at {self.pos}")
        return value

    def _run(self) -> str:
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos] not in _VALUE_END:
            self.pos += 1
        return text[start:self.pos]


def _comment_end(text: str, start: int) -> int:
    """The index just after the comment that opens at `start` (nesting counted)."""
    depth = 0
    pos = start
    while pos < len(text):
        ch = text[pos]
        if ch == "\\":
            pos += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    raise _Malformed("unterminated comment")


def _split_results(text: str, start: int) -> list[str]:
    """The pieces between the ";" separators from `start` on, ignoring any ";" inside a
    comment or a quoted-string (the text before the first ";" must be only CFWS)."""
    pieces: list[str] = []
    pos = start
    current = -1  # start of the piece being read; -1 before the first ";"
    while pos < len(text):
        ch = text[pos]
        if ch == "(":
            pos = _comment_end(text, pos)
            continue
        if ch == '"':
            if current < 0:
                raise _Malformed("a quoted-string before the first result")
            cursor = _Cursor(text)
            cursor.pos = pos
            cursor.quoted_string()
            pos = cursor.pos
            continue
        if ch == "\\":
            raise _Malformed("a backslash outside quotes")
        if ch == ";":
            if current >= 0:
                pieces.append(text[current:pos])
            current = pos + 1
        elif current < 0 and ch not in _BLANKS:
            raise _Malformed(f"unexpected {ch!r} before the first result")
        pos += 1
    if current < 0:
        raise _Malformed("no result")
    pieces.append(text[current:])
    return pieces


def _resinfo(piece: str) -> ResInfo:
    cur = _Cursor(piece)
    cur.skip_cfws()
    method = cur.take(_KEYWORD).lower()
    if not method:
        raise _Malformed("no method")
    cur.skip_cfws()
    version = ""
    if cur.peek() == "/":
        cur.pos += 1
        cur.skip_cfws()
        version = cur.take(_DIGITS)
        if not version:
            raise _Malformed("no method version")
        cur.skip_cfws()
    cur.expect("=")
    cur.skip_cfws()
    result = cur.take(_KEYWORD).lower()
    if not result:
        raise _Malformed("no result")
    reason = ""
    properties: list[tuple[str, str]] = []
    while True:
        cur.skip_cfws()
        if cur.at_end():
            break
        key = cur.take(_KEYWORD).lower()
        if not key:
            raise _Malformed(f"unexpected {cur.peek()!r}")
        cur.skip_cfws()
        if cur.peek() == ".":
            cur.pos += 1
            cur.skip_cfws()
            prop = cur.take(_KEYWORD).lower()
            if not prop:
                raise _Malformed("no property after the dot")
            key = f"{key}.{prop}"
            cur.skip_cfws()
        cur.expect("=")
        cur.skip_cfws()
        value = cur.pvalue()
        if key == "reason" and not reason and not properties:
            reason = value
        else:
            properties.append((key, value))
    return ResInfo(method=method, result=result, version=version, reason=reason,
                   properties=tuple(properties))


def _is_no_result(piece: str) -> bool:
    """The piece is `none`: the MTA checked nothing (RFC 8601 section 2.2, no-result)."""
    cur = _Cursor(piece)
    try:
        cur.skip_cfws()
        word = cur.take(_KEYWORD).lower()
        cur.skip_cfws()
    except _Malformed:
        return False
    return word == "none" and cur.at_end()


def parse_authentication_results(value: str) -> AuthResults | None:
    """`value` read per RFC 8601; None when it does not follow the grammar."""
    text = value[:MAX_VALUE]
    try:
        cur = _Cursor(text)
        cur.skip_cfws()
        start = cur.pos
        if cur.peek() == '"':
            cur.quoted_string()
        elif not cur.take(_TOKEN):
            return None
        authserv_id = text[start:cur.pos]
        after_id = cur.pos
        cur.skip_cfws()
        version = ""
        if cur.pos > after_id:  # a version must be set apart from the id by CFWS
            version = cur.take(_DIGITS)
            if version and cur.peek() not in _BLANKS + ";(":
                return None
            cur.skip_cfws()
        pieces = _split_results(text, cur.pos)
    except _Malformed:
        return None
    if len(pieces) == 1 and _is_no_result(pieces[0]):
        return AuthResults(authserv_id=authserv_id, version=version)
    results: list[ResInfo] = []
    unreadable = 0
    for piece in pieces:
        try:
            results.append(_resinfo(piece))
        except _Malformed:
            unreadable += 1
    return AuthResults(authserv_id=authserv_id, version=version, results=tuple(results),
                       unreadable=unreadable)
