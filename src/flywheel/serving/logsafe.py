"""Request data in log lines: escaped and truncated, so one request can neither forge log lines
nor make logging slow.

A category of 900 KB, a newline followed by a fake log record, a terminal escape sequence or a
lone surrogate all come out as one short line of printable ASCII: `ascii()` escapes everything
else, and the text is cut before escaping so the cost is bounded whatever the input's size.
"""

from __future__ import annotations

from typing import Any

MAX_LOGGED_CHARS = 200


def untrusted(value: Any, limit: int = MAX_LOGGED_CHARS) -> str:
    """`value` as a short, quoted, escaped ASCII string fit for one log line."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    shown = ascii(text[:limit])
    return f"{shown}... ({len(text)} chars)" if cut else shown
