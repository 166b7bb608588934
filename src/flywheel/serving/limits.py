"""Cheap checks that keep hostile bodies away from the JSON decoder and the validator.

A body of a few thousand `[` makes a recursive decoder raise `RecursionError` deep inside
BentoML, where the request never completes; a client that sends its body a byte at a time
holds a connection forever. Both are cut off here, before any parsing, at C speed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

_STRING = re.compile(rb'"[^"]*"')
_NOT_KEPT = bytes(b for b in range(256) if b not in b'"[]{}')
_PAIRS = (b"[]", b"{}")


class TooDeep(Exception):
    pass


class TooSlow(Exception):
    pass


def check_depth(body: bytes, limit: int) -> None:
    """Raise `TooDeep` when arrays/objects nest more than `limit` levels.

    Strings are blanked (brackets inside them do not count, so a string cannot fake a
    shallow shape), everything but brackets is dropped, then innermost pairs are removed one
    level per pass: a records body ends after two passes, a hostile one is refused after
    `limit` passes, whatever its length. Brackets left over unbalanced are refused too: such
    a body is not JSON, and an unclosed run of `[` is what makes a recursive decoder overflow.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    # Escaped backslashes, then escaped quotes, go first; then only quotes and brackets stay,
    # so blanking strings runs over a few bytes per record, not the whole body.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _STRING.sub(b"", unescaped.translate(None, _NOT_KEPT))
    for _ in range(limit):
        if not brackets:
            return
        for pair in _PAIRS:
            brackets = brackets.replace(pair, b"")
    if brackets:  # deeper than `limit`, or unbalanced (not JSON either way)
        raise TooDeep


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result, or `TooSlow` once `seconds` pass (a slowloris body)."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise TooSlow from None
