"""Lone surrogates out of decoded mail text, once, where it leaves parsing.

Some codecs turn mail bytes into code points U+D800..U+DFFF that no UTF-8 file, JSON
document or SMTP line can hold: `utf-7` (`+2AA-`), `raw-unicode-escape` and
`unicode-escape` (a literal `\\ud800`, also how the stdlib reads header text outside
encoded words), `utf-16` with odd pairs. Such text made the store's write raise, which
rolled back a whole group of messages. Everything the later stages read passes through
`without_surrogates`: a high+low pair becomes the character it stands for, a lone one
U+FFFD, so storage and templates never see one.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with surrogate pairs joined and lone surrogates replaced by U+FFFD."""
    if text.isascii() or not _SURROGATES.search(text):
        return text
    # UTF-16 is the one encoding in which a pair of surrogates means a character.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def without_surrogates(value: Any) -> Any:
    """`value` (str, tuple, list, dict or dataclass of them) with every string cleaned;
    the same object when nothing needed cleaning, so clean mail costs one scan."""
    kind: type = type(value)
    if kind is str:
        return value if value.isascii() else clean_text(value)
    if kind is tuple or kind is list:
        # Most are tuples of ASCII strings (addresses, ids, lines): one pass says so.
        if all(type(v) is str and v.isascii() for v in value):
            return value
        items = [without_surrogates(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return kind(items)
    if kind is dict:
        pairs = [(without_surrogates(k), without_surrogates(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    names = _field_names(kind)
    if not names:
        return value  # None, numbers, datetimes, bytes
    changed = {}
    for name in names:
        old = getattr(value, name)
        if old is None or (type(old) is str and old.isascii()):
            continue
        new = without_surrogates(old)
        if new is not old:
            changed[name] = new
    return dataclasses.replace(value, **changed) if changed else value


@functools.lru_cache(maxsize=None)
def _field_names(kind: type) -> tuple[str, ...]:
    if not dataclasses.is_dataclass(kind):
        return ()
    return tuple(f.name for f in dataclasses.fields(kind))
