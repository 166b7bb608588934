"""Categorical levels of a reference: frequent ones kept, rare and never-seen ones pooled.

A reference sample of a high-cardinality feature misses many of the population's levels, and
its rare levels are seen by chance. Comparing level by level then flags every window: values
never seen in the reference have reference share 0. So rare and unseen levels share one
"other" bin. Its share must estimate the population mass of every level outside the kept set,
unseen ones included. Choosing the kept levels and counting their shares on the same rows
biases that estimate (levels that were lucky are kept, their share is too high, "other" too
low), and no resampling of the counts reproduces that selection. Hence sample splitting: the
kept levels are chosen on a random quarter of the reference (at least `min_level_rows` rows
there, at most `max_levels` levels), and all shares are counted on the other three quarters.
Given the choice, those shares are plain multinomial proportions of a fixed partition, the
"other" share counts rows of rare and never-chosen levels alike, and the two-sample null of
`null` is exact for them. A feature whose every level is frequent (and no more than
`max_levels`) is kept whole, on all rows.

Good–Turing's estimate of the share of values never seen in the reference, singletons / rows,
is kept in the profile: the expected share of brand-new values in a window without drift.
"""

from __future__ import annotations

import numpy as np

# The share of the reference rows that chooses the kept levels (the rest estimates shares).
SELECTION_SHARE = 0.25


def good_turing_unseen(counts: np.ndarray) -> float:
    """Good–Turing estimate of the mass of levels never seen: singletons / rows (0 if empty)."""
    counts = np.asarray(counts, dtype="int64")
    rows = int(counts.sum())
    return float(np.count_nonzero(counts == 1) / rows) if rows else 0.0


def keep_mask(counts: np.ndarray, min_rows: int, max_levels: int) -> np.ndarray:
    """Levels with at least `min_rows` rows, the `max_levels` most frequent at most (a tie at
    the cut is pooled whole, so which tied level stays never depends on order)."""
    counts = np.asarray(counts, dtype="int64")
    threshold = max(min_rows, 1)
    if counts.size > max_levels:
        threshold = max(threshold, int(np.sort(counts)[::-1][max_levels]) + 1)
    return counts >= threshold


def needs_pooling(counts: np.ndarray, min_rows: int, max_levels: int) -> bool:
    """Whether some level is rare or there are too many: then the reference is split."""
    counts = np.asarray(counts, dtype="int64")
    frequent = min_rows / SELECTION_SHARE
    return counts.size > max_levels or bool((counts < frequent).any())


def split_counts(
    codes: np.ndarray, levels: int, min_rows: int, max_levels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Kept levels (mask over `levels`) and bin counts: kept levels, other, missing.

    `codes` are level indices per row, -1 for missing. Without pooling all rows count.
    """
    codes = np.asarray(codes, dtype="int64")
    full = np.bincount(codes[codes >= 0], minlength=levels)
    if not needs_pooling(full, min_rows, max_levels):
        kept = np.ones(levels, dtype=bool)
        rest = codes
    else:
        chooser = np.random.default_rng(seed).random(codes.size) < SELECTION_SHARE
        picked = codes[chooser]
        kept = keep_mask(np.bincount(picked[picked >= 0], minlength=levels), min_rows, max_levels)
        rest = codes[~chooser]
    slot = np.full(levels + 1, int(kept.sum()) + 1)  # level -> bin; index `levels` = missing
    slot[:levels][~kept] = int(kept.sum())
    slot[:levels][kept] = np.arange(int(kept.sum()))
    return kept, np.bincount(slot[rest], minlength=int(kept.sum()) + 2)
