"""HTML body -> plain text in which quoted parts are marked with `> `.

Takes the decoded HTML of one part; hands on text that `quotes.py` can read like any
plain-text reply. Mail clients mark quotes in HTML more reliably than in their plain-text
twins, so the markup is turned into ordinary `>` quoting here instead of being lost:

- `<blockquote>` (Gmail's `gmail_quote`, Thunderbird/Apple `type="cite"`, Yandex, mail.ru),
  Gmail's `<div class="gmail_quote">`, Yahoo's `yahoo_quoted`, Thunderbird's
  `moz-cite-prefix` attribution: quoted while open.
- Outlook's reply header (`<div style="border:none;border-top:solid …;padding:…">`,
  `id="divRplyFwdMsg"`, `id="appendonsend"`, Windows Mail's border-top div): everything
  from there to the end is the quoted message, because Outlook does not nest it.
- Signature containers (`gmail_signature`, `moz-signature`, Outlook's `id="Signature"`)
  are introduced by a `-- ` line, the plain-text signature delimiter.

A small `HTMLParser` subclass is enough: we need text, line breaks and those few markers,
not layout, so no new dependency is worth it.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_SKIP = {"script", "style", "head", "title", "xml", "template", "noscript", "object"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "base", "col", "area", "wbr", "source",
         "embed", "param", "track", "basefont", "frame", "keygen"}
_BLOCK = {"p", "div", "blockquote", "li", "ul", "ol", "tr", "table", "tbody", "thead",
          "tfoot", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "section", "article",
          "header", "footer", "center", "dl", "dt", "dd", "address", "form", "fieldset",
          "nav", "aside", "main", "figure", "figcaption", "hr", "br", "caption"}
_QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "protonmail_quote",
                  "zmail_extra", "ymail_android_signature_quote")
_SIGNATURE_CLASSES = ("gmail_signature", "moz-signature")
_REST_IDS = ("divrplyfwdmsg", "appendonsend")
_SPACE = re.compile(r"[ \t\r\n\f\v]+")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad"))
_TAG = re.compile(r"<[^<>]{0,2000}>")


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[bool, str]] = []  # (quoted, text)
        self.current: list[str] = []
        self.has_text = False  # does `current` hold more than white space (nbsp counts)?
        self.current_quoted = False
        # (tag, opens quote, skips text, ends with a blank line)
        self.stack: list[tuple[str, bool, bool, bool]] = []
        self.open_count: dict[str, int] = {}  # tag -> how many are on the stack
        self.quote_depth = 0
        self.skip_depth = 0
        self.pre_depth = 0
        self.rest_quoted = False
        # Open <a> elements: (mailto address, lines so far, pieces of the line so far).
        self.links: list[tuple[str, int, int]] = []

    # -- output ------------------------------------------------------------------------

    @property
    def quoted(self) -> bool:
        return self.rest_quoted or self.quote_depth > 0

    def _break(self) -> None:
        text = "".join(self.current).replace("\u00a0", " ")
        if self.pre_depth == 0:
            text = text.strip(" ")
        self.lines.append((self.current_quoted, text))
        self.current = []
        self.has_text = False
        self.current_quoted = self.quoted

    def _soft_break(self) -> None:
        """A block boundary: end the line unless it is already empty."""
        if self.has_text:
            # A block holding only &nbsp; is how Outlook writes an empty line.
            self._break()
        else:
            self.current = []
        self.current_quoted = self.quoted

    def _text(self, data: str) -> None:
        if not self.has_text:
            self.current_quoted = self.quoted
        if data.strip(" "):
            self.has_text = True
        self.current.append(data)

    # -- parser callbacks --------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        a = {k.lower(): (v or "") for k, v in attrs}
        classes = a.get("class", "").lower()
        style = a.get("style", "").lower().replace(" ", "")
        ident = a.get("id", "").lower()

        if tag in _VOID:
            if tag == "br":
                self._break()
            elif tag == "hr":
                self._soft_break()
            return

        opens_quote = tag == "blockquote" or (
            tag == "div" and any(c in classes for c in _QUOTE_CLASSES)
        ) or a.get("type", "").lower() == "cite"
        if (tag == "div" and ident in _REST_IDS) or (
            tag == "div" and "border-top" in style and "solid" in style and "padding" in style
        ) or "outlookmessageheader" in classes:
            if tag in _BLOCK:
                self._soft_break()
            self.rest_quoted = True
        skips = tag in _SKIP
        if tag in _BLOCK:
            self._soft_break()
        if tag == "a":
            href = a.get("href", "").strip()
            addr = href[7:].split("?", 1)[0].strip() if href.lower().startswith("mailto:") else ""
            self.links.append((addr, len(self.lines), len(self.current)))
        # A <p> is shown with a gap after it, except Outlook's MsoNormal paragraphs, which
        # have no margin and stand for single lines (it writes empty ones for blank lines).
        gap = tag == "p" and "msonormal" not in classes
        self.stack.append((tag, opens_quote, skips, gap))
        self.open_count[tag] = self.open_count.get(tag, 0) + 1
        if opens_quote:
            self.quote_depth += 1
            self.current_quoted = True
        if skips:
            self.skip_depth += 1
        if tag == "pre":
            self.pre_depth += 1
        if tag == "li":
            self._text("- ")
        if any(c in classes for c in _SIGNATURE_CLASSES) or ident == "signature" or (
            a.get("data-smartmail", "").lower() == "gmail_signature"
        ):
            self._soft_break()
            self.lines.append((self.quoted, "-- "))
        if tag in ("td", "th"):
            self._text(" ")

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag in _VOID:
            return
        if not self.open_count.get(tag):
            return  # stray end tag: ignore, as browsers do
        if tag == "a" and self.links:
            # A mailto link shown as a name (Outlook's "@Grace Liu" mention): keep the
            # address, which is what a Commander: or role line needs.
            addr, lines, pieces = self.links.pop()
            shown = "".join(self.current[pieces:]) if len(self.lines) == lines else ""
            if "@" in addr and addr.lower() not in shown.lower() and self.skip_depth == 0:
                self._text(f" <{addr}>")
        if tag in _BLOCK:
            self._soft_break()
        while self.stack:
            t, opens_quote, skips, gap = self.stack.pop()
            self.open_count[t] -= 1
            if gap and self.lines and self.lines[-1][1].strip():
                self.lines.append((self.quoted, ""))
            if opens_quote:
                self.quote_depth -= 1
            if skips:
                self.skip_depth -= 1
            if t == "pre":
                self.pre_depth -= 1
            if t == tag:
                break
        if not self.has_text:
            self.current_quoted = self.quoted

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag.lower() not in _VOID:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self.skip_depth > 0:
            return
        if self.pre_depth > 0:
            parts = data.replace("\r\n", "\n").split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._break()
                self._text(part.replace("\u00a0", " "))
            return
        text = _SPACE.sub(" ", data.translate(_INVISIBLE))
        if text:
            if text == " " and (not self.current or self.current[-1].endswith(" ")):
                return
            self._text(text)

    def finish(self) -> list[tuple[bool, str]]:
        if self.current:
            self._break()
        return self.lines


def _quotes_closed(tag: str) -> bool:
    """Is every quoted attribute value in `tag` closed? (Else the parser would rescan.)"""
    quote = ""
    after_eq = False
    for c in tag:
        if quote:
            if c == quote:
                quote = ""
        elif c == "=":
            after_eq = True
        elif c in "\"'" and after_eq:
            quote, after_eq = c, False
        elif not c.isspace():
            after_eq = False
    return not quote


def defuse(markup: str) -> str:
    """`markup` with every `<` that does not open a complete tag written as `&lt;`.

    `HTMLParser` rescans to the end of the input for each `<` that starts an unfinished
    construct (`<a <a <a …`, `x<y`, `<!--` without `-->`), which is quadratic: a 1 MB body
    of them takes hours. After this linear pass every remaining `<` starts a tag, comment
    or declaration that closes before the next `<`, so the parser never rescans.
    """
    out: list[str] = []
    pos, n = 0, len(markup)
    next_gt = next_lt = -2  # cached positions, only ever move forward
    while pos < n:
        i = markup.find("<", pos)
        if i < 0:
            out.append(markup[pos:])
            break
        out.append(markup[pos:i])
        if markup.startswith("<!--", i):
            end = markup.find("-->", i + 4)
            if end < 0:  # an unterminated comment hides the rest, as in a browser
                break
            out.append(markup[i:end + 3])
            pos = end + 3
            continue
        if next_gt != -1 and next_gt <= i:
            next_gt = markup.find(">", i + 1)
        if next_lt != -1 and next_lt <= i:
            next_lt = markup.find("<", i + 1)
        nxt = markup[i + 1:i + 3]
        opens = nxt[:1].isalpha() or nxt[:1] in ("!", "?") or (
            nxt[:1] == "/" and nxt[1:2].isalpha())
        closes = next_gt > i and (next_lt < 0 or next_gt < next_lt)
        tag = markup[i:next_gt + 1] if opens and closes else ""
        if tag and (not nxt[:1].isalpha() or _quotes_closed(tag)):
            out.append(tag)
            pos = next_gt + 1
        else:
            out.append("&lt;")
            pos = i + 1
    return "".join(out)


def html_to_text(markup: str) -> tuple[str, list[str]]:
    """Readable text of `markup`, quotes prefixed with `> `; and what went wrong, if anything."""
    defects: list[str] = []
    conv = _Converter()
    try:
        markup = defuse(markup)
        conv.feed(markup)
        conv.close()
        lines = conv.finish()
    except Exception as exc:  # HTMLParser has raised on odd markup in some Pythons
        defects.append(f"HTML could not be parsed ({type(exc).__name__}); tags stripped")
        text = html.unescape(_TAG.sub("\n", markup))
        lines = [(False, _SPACE.sub(" ", line).replace("\u00a0", " ").strip())
                 for line in text.split("\n")]
    out: list[str] = []
    blank = 0
    for quoted, text in lines:
        text = text.rstrip() if text != "-- " else text
        if not text.strip() and text != "-- ":
            blank += 1
            if blank > 1:
                continue
            out.append(">" if quoted else "")
            continue
        blank = 0
        out.append(f"> {text}" if quoted else text)
    return "\n".join(out).strip("\n"), defects
