"""Table text made safe to show in Great Expectations' Data Docs, where it is not escaped.

GX renders the unexpected values it found, and the value sets it expected, into its HTML pages
as they are: a category `<script>…</script>` in an uploaded table ran in the browser of whoever
opened the validation report. So every string the suite compares or lists is HTML-escaped on
both sides (the table's cells and the spec's value sets). `html.escape` is one-to-one, so a
value is in a set exactly when its escaped form is in the escaped set: validation decides the
same, and the pages show text, never markup.
"""

from __future__ import annotations

import html
import re

import pandas as pd

MARKUP = re.compile(r"[<>&\"']")


def escaped(value: str) -> str:
    return html.escape(value, quote=True)


def escaped_list(values: list[str]) -> list[str]:
    return [escaped(v) for v in values]


def html_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every string cell that holds markup characters escaped (a shallow copy).

    Only text columns are looked at, and only the cells that need it are replaced, so the
    common clean table costs one vectorised scan per text column.
    """
    changed = {}
    for name in frame.columns:
        column = frame[name]
        if not (pd.api.types.is_string_dtype(column) or column.dtype == object):
            continue
        text = column.map(lambda v: v if isinstance(v, str) else "", na_action="ignore")
        if not text.fillna("").str.contains(MARKUP).any():
            continue
        changed[name] = column.map(
            lambda v: escaped(v) if isinstance(v, str) else v, na_action="ignore"
        )
    return frame.assign(**changed) if changed else frame
