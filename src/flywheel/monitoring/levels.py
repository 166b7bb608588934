"""Categorical levels of a reference: frequent ones kept, rare and never-seen ones pooled.

A reference sample of a high-cardinality feature misses many of the population's levels, and
its rare levels are seen by chance. Comparing level by level then flags every window: values
never seen in the reference have reference share 0. Instead, levels seen fewer than `t` times
are pooled with the unseen ones into one "other" bin whose share is the Good–Turing estimate of
the population mass of all levels seen fewer than `t` times (unseen included):

    other = sum over r = 0..t-1 of (r+1)·N_{r+1} / n = sum over s = 1..t of s·N_s / n

where N_s is the number of levels seen exactly s times and n the rows with a value. For t = 1
this is Good–Turing's unseen mass N_1 / n (the share of singletons). The kept levels share the
rest in proportion to their counts, so the shares still sum to one.
"""

from __future__ import annotations

import numpy as np


def good_turing_unseen(counts: np.ndarray) -> float:
    """Good–Turing estimate of the mass of levels never seen: singletons / rows (0 if empty)."""
    counts = np.asarray(counts, dtype="int64")
    rows = int(counts.sum())
    return float(np.count_nonzero(counts == 1) / rows) if rows else 0.0


def keep_threshold(counts: np.ndarray, min_rows: int, max_levels: int) -> int:
    """Smallest count a level needs to keep its own bin: at least `min_rows`, and high enough
    that at most `max_levels` levels are kept (ties at the cut are pooled together)."""
    ordered = np.sort(np.asarray(counts, dtype="int64"))[::-1]
    if ordered.size <= max_levels:
        return max(min_rows, 1)
    return max(min_rows, 1, int(ordered[max_levels]) + 1)


def pooled_shares(counts: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Which levels are kept, the kept levels' shares and the pooled "other" share (Good–Turing).

    Shares are of the rows with a value; kept shares plus other sum to one.
    """
    counts = np.asarray(counts, dtype="int64")
    rows = int(counts.sum())
    kept = counts >= threshold
    if rows == 0:
        return kept, np.zeros(int(kept.sum())), 0.0
    small = counts[(counts >= 1) & (counts <= threshold)]
    other = float(small.sum() / rows)
    kept_counts = counts[kept].astype("float64")
    total = kept_counts.sum()
    kept_shares = kept_counts / total * (1.0 - other) if total else kept_counts
    return kept, kept_shares, other
