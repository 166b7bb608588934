"""Paired bootstrap of a ranking metric: is the candidate better than the champion, or lucky?

Both models are scored on the same resampled test rows, so the noise they share cancels in the
difference. Resampling with replacement is the same as giving each row an integer weight (how
often it was drawn), so every resample is a row of a weight matrix and the metric of all of them
is a few vectorized cumulative sums over the rows sorted once by score: no per-resample sort and
no scikit-learn call per resample.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from flywheel.config import BootstrapParams
from flywheel.errors import ConfigError
from flywheel.evaluation.metrics import check_scores

log = logging.getLogger(__name__)


def _grouped(
    proba: np.ndarray, y: np.ndarray, weights: np.ndarray, descending: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative weight per distinct score (ties form one group), in score order."""
    order = np.argsort(-proba if descending else proba, kind="mergesort")
    sorted_scores = proba[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    is_pos = y[order] == 1
    pos = np.add.reduceat(np.where(is_pos, w, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(is_pos, 0.0, w), starts, axis=1)
    return pos, neg


def weighted_roc_auc(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per row of `weights` (B x n): P(score of a positive > a negative), ties count 1/2."""
    pos, neg = _grouped(proba, y, weights, descending=False)
    neg_below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / pairs, np.nan)


def weighted_average_precision(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision per row of `weights`, as scikit-learn defines it (step-wise, no
    interpolation): sum over thresholds of precision times the recall gained there."""
    pos, neg = _grouped(proba, y, weights, descending=True)
    tp = np.cumsum(pos, axis=1)
    fp = np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        total = tp[:, -1]
        return np.where(total > 0, (pos * precision).sum(axis=1) / total, np.nan)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "roc_auc": weighted_roc_auc,
    "pr_auc": weighted_average_precision,
}


def resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of n rows is drawn in each resample (B x n), drawn with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    flat = (draws + (np.arange(resamples) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype("float64")


def paired_bootstrap(
    y_true: np.ndarray,
    proba_candidate: np.ndarray,
    proba_champion: np.ndarray,
    metric: str,
    params: BootstrapParams,
) -> dict[str, float]:
    """Observed metric difference candidate - champion and its percentile confidence interval.

    Returns delta, ci_low, ci_high and resamples (how many resamples had both classes and so
    entered the interval).
    """
    if metric not in METRICS:
        raise ConfigError(f"bootstrap metric {metric!r} unsupported; use one of {sorted(METRICS)}")
    y, cand = check_scores(y_true, proba_candidate, "proba_candidate")
    _, champ = check_scores(y_true, proba_champion, "proba_champion")
    score = METRICS[metric]

    ones = np.ones((1, y.size))
    delta = float(score(y, cand, ones)[0] - score(y, champ, ones)[0])
    if np.isnan(delta):
        raise ConfigError(f"{metric} is undefined on a test set with a single class")

    weights = resample_weights(y.size, params.resamples, params.seed)
    diffs = score(y, cand, weights) - score(y, champ, weights)
    valid = diffs[~np.isnan(diffs)]
    if valid.size < diffs.size:
        log.warning(
            "%d of %d resamples had a single class and were dropped",
            diffs.size - valid.size,
            diffs.size,
        )
    tail = (1.0 - params.confidence) / 2.0
    low, high = np.quantile(valid, [tail, 1.0 - tail])
    log.debug("paired bootstrap %s: delta=%.4f CI=[%.4f, %.4f]", metric, delta, low, high)
    return {
        "delta": delta,
        "ci_low": float(low),
        "ci_high": float(high),
        "resamples": int(valid.size),
    }
