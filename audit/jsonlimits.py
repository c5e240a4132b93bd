"""How deep a JSON text nests, found without parsing it (pure: no Django imports).

``json.loads`` recurses once per array or object level; a body of a few hundred kilobytes of
``[`` makes it raise ``RecursionError`` (or worse, in a thread with a small stack). The
receivers ask ``nesting_within`` first and refuse deeper input with 400, so nothing past them
ever parses such a document. The check works on bytes with regular expressions (C speed):
strings are removed (brackets inside them do not count), everything but brackets is dropped,
then innermost ``[]``/``{}`` pairs are removed once per level. Brackets that never pair off
(unbalanced input, which no JSON parser accepts either) count as too deep.
"""

from __future__ import annotations

import re

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_INNERMOST = re.compile(rb"\[\]|\{\}")


def nesting_within(text: bytes | str, limit: int) -> bool:
    """True when the arrays and objects of ``text`` nest at most ``limit`` levels deep."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if data.count(b"[") + data.count(b"{") <= limit:  # the common, small case: nothing to do
        return True
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    for _ in range(limit):
        if not brackets:
            return True
        brackets = _INNERMOST.sub(b"", brackets)
    return not brackets
