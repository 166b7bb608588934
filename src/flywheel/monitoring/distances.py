"""The drift formulas, each a short pure numpy function pinned by hand-computed tests.

Distributions are share vectors over the same bins (quantile bins of the training split, or
categories plus "unseen" and "missing" buckets), so every distance here is O(bins), whatever
the window size; the per-row work is binning, done once.
"""

from __future__ import annotations

import numpy as np

# Empty bins would make PSI infinite; shares are clipped to this before the logarithm.
EPS = 1e-4


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts to shares along the last axis (all-zero rows stay zero)."""
    counts = np.asarray(counts, dtype="float64")
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def psi(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Population stability index: sum over bins of (cur - ref) * ln(cur / ref).

    Works on one share vector or a stack of them (last axis = bins).
    """
    ref = np.clip(np.asarray(reference, dtype="float64"), EPS, None)
    cur = np.clip(np.asarray(current, dtype="float64"), EPS, None)
    return np.sum((cur - ref) * np.log(cur / ref), axis=-1)


def js_distance(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance with base-2 logs: 0 for equal shares, 1 for disjoint ones."""
    p = np.asarray(reference, dtype="float64")
    q = np.asarray(current, dtype="float64")
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        return np.sum(a * np.log2(ratio), axis=-1)

    return np.sqrt(np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0))


def wasserstein_normalized(
    reference_quantiles: np.ndarray, current_quantiles: np.ndarray, reference_std: float
) -> float:
    """Earth mover's distance between two 1-d distributions, in reference standard deviations.

    W1 is the mean absolute gap between the quantile functions; both are given on the same
    grid of probabilities (midpoints), so the mean over the grid is the integral. A constant
    reference (std 0) leaves the distance in the feature's own units.
    """
    gap = np.abs(np.asarray(current_quantiles) - np.asarray(reference_quantiles))
    distance = float(np.mean(gap))
    return distance / reference_std if reference_std > 0 else distance


def quantile_grid(points: int) -> np.ndarray:
    """Midpoints of `points` equal slices of [0, 1]: the grid W1 is integrated on."""
    return (np.arange(points) + 0.5) / points

