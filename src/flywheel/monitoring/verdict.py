"""From per-feature p-values to one dataset verdict: Holm's step-down, then persistence.

Every feature and the score is one test. Holm's rule holds the family-wise false-alarm rate of
a window at `monitor.alpha`: sort the p-values, compare the i-th smallest (i = 1..T) with
alpha / (T - i + 1), and flag every test up to the first that fails. "Some test flagged" is
the same event as Bonferroni's min p <= alpha / T, so the dataset verdict's false-alarm rate is
at most alpha; Holm only flags more of the drifted features once one has been found.

Persistence: a dataset alarm is raised only after `monitor.persistence` consecutive windows
each found drift (1: at once). Windows are consecutive when the previous report (same model
version) ended at most one window length before this one started; a previous report that
shares most of this window's rows (a manual `flywheel monitor` right after the scheduled one)
is the same evidence and does not lengthen the streak.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

RULE = (
    "Holm step-down over {tests} tests (features and score) at family-wise alpha {alpha}; "
    "alarm after {persistence} consecutive drifted window(s)"
)


def holm(p_values: Sequence[float], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Which tests Holm rejects, and the level each p-value is held to (alpha / (T - rank))."""
    p = np.asarray(p_values, dtype="float64")
    count = p.size
    order = np.argsort(p, kind="stable")
    levels = np.empty(count)
    levels[order] = alpha / (count - np.arange(count))
    passed = p[order] <= levels[order]
    stop = count if passed.all() else int(np.argmin(passed))
    rejected = np.zeros(count, dtype=bool)
    rejected[order[:stop]] = True
    return rejected, levels


def streak(
    detected: bool,
    previous: dict[str, Any] | None,
    version: str,
    window: tuple[datetime, datetime],
) -> int:
    """Consecutive windows with drift, this one included (0 when this one found none)."""
    if not detected:
        return 0
    before = (previous or {}).get("drift") or {}
    if (
        previous is None
        or str(previous.get("model_version")) != version
        or not before.get("streak")
    ):
        return 1
    start, end = window
    length = end - start
    previous_end = datetime.fromisoformat(previous["window"]["end"])
    if previous_end > start + length / 2:
        return int(before["streak"])  # mostly the same rows: not new evidence
    if previous_end >= start - length:
        return int(before["streak"]) + 1
    return 1
