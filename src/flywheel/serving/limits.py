"""Cheap checks that keep hostile bodies away from a recursive decoder and the validator.

A body of a few thousand `[` makes a recursive decoder raise `RecursionError` deep inside
BentoML, where the request never completes; a client that sends its body a byte at a time
holds a connection forever. Both are cut off here, before any parsing, at C speed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from itertools import chain
from typing import Any, TypeVar

T = TypeVar("T")

_STRING = re.compile(rb'"[^"]*"')
_NOT_KEPT = bytes(b for b in range(256) if b not in b'"[]{}')
_PAIRS = (b"[]", b"{}")


# What `parse_bounded` returns for a body orjson refuses (left to the standard decoder).
NOT_PARSED: Any = object()


class TooDeep(Exception):
    pass


class PayloadTooLarge(Exception):
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


def parse_bounded(body: bytes, limit: int) -> Any:
    """The decoded body, or `NOT_PARSED` if orjson refuses it; `TooDeep` past `limit` levels.

    orjson stops at its own nesting limit with a clean error instead of overflowing the stack,
    so decoding first and measuring depth on the result is safe, and a walk over the decoded
    containers costs a fraction of `check_depth`'s byte scan (which took longer than decoding
    on a 2,000-record body). What orjson refuses (`NaN`, `Infinity`, not JSON at all) gets the
    byte scan, then goes on to the standard decoder downstream.
    """
    import orjson

    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        check_depth(body, limit)
        return NOT_PARSED
    if not depth_within(value, limit):
        raise TooDeep
    return value


def depth_within(value: Any, limit: int) -> bool:
    """Whether decoded JSON nests at most `limit` arrays/objects deep (by level, no recursion).

    Each level is scanned with `map`/`chain` at C speed; only levels that hold containers are
    filtered in Python (for a records body: the one list of records).
    """
    level: list[Any] = [value]
    for _ in range(limit + 1):
        kinds = set(map(type, level))
        if dict not in kinds and list not in kinds:  # orjson builds exactly these types
            return True
        dicts = [v for v in level if type(v) is dict]
        lists = [v for v in level if type(v) is list]
        level = list(chain(chain.from_iterable(map(dict.values, dicts)),
                           chain.from_iterable(lists)))
    return False


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result, or `TooSlow` once `seconds` pass (a slowloris body)."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise TooSlow from None


async def read_body(receive: Callable[..., Any], limit: int) -> bytes:
    """Read an ASGI request body, stopping as soon as it passes `limit` (chunked included)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def bounded_body(headers: dict[bytes, bytes], receive: Callable[..., Any], limit: int,
                       timeout_s: float) -> bytes:
    """The body within `limit` bytes and `timeout_s` seconds: `PayloadTooLarge` (a declared
    length over the limit is refused before reading), `TooSlow`, or `ValueError` for a
    Content-Length that is not a number."""
    if int(headers.get(b"content-length", b"0") or 0) > limit:
        raise PayloadTooLarge
    return await within(timeout_s, read_body(receive, limit))
