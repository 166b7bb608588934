"""Paired bootstrap of a ranking metric: is the candidate better than the champion, or lucky?

Both models are scored on the same resampled test rows, so the noise they share cancels in the
difference. Resampling with replacement is the same as giving each row an integer weight (how
often it was drawn), so every resample is a row of a weight matrix and the metric of all of them
is a few vectorized cumulative sums over the rows sorted once by score: no per-resample sort and
no scikit-learn call per resample.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from flywheel.config import BootstrapParams
from flywheel.errors import ConfigError
from flywheel.evaluation.metrics import check_scores

log = logging.getLogger(__name__)


# Resample weights held at once (32 MiB of float64), whatever the test split's size: 1,000
# resamples of a 1M-row test split would otherwise be an 8 GB matrix, several times over.
CHUNK_CELLS = 1 << 22

Ranking = tuple[np.ndarray, np.ndarray, np.ndarray]  # order, first row of each tie, positive


def _ranking(y: np.ndarray, proba: np.ndarray, descending: bool) -> Ranking:
    """Rows sorted by score once, for every chunk of resamples."""
    order = np.argsort(-proba if descending else proba, kind="mergesort")
    sorted_scores = proba[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    return order, starts, y[order] == 1


def _grouped(ranking: Ranking, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative weight per distinct score (ties form one group), in score order.

    `np.take` gathers the columns ~4x faster than fancy indexing, and distinct scores (the
    usual case for a boosted model) need no grouping pass at all.
    """
    order, starts, is_pos = ranking
    w = np.take(weights, order, axis=1)
    pos = w * is_pos
    if len(starts) < w.shape[1]:
        pos = np.add.reduceat(pos, starts, axis=1)
        w = np.add.reduceat(w, starts, axis=1)
    return pos, np.subtract(w, pos, out=w)


def weighted_roc_auc(ranking: Ranking, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per row of `weights` (B x n): P(score of a positive > a negative), ties count 1/2.
    `ranking` is ascending."""
    pos, neg = _grouped(ranking, weights)
    neg_below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / pairs, np.nan)


def weighted_average_precision(ranking: Ranking, weights: np.ndarray) -> np.ndarray:
    """Average precision per row of `weights`, as scikit-learn defines it (step-wise, no
    interpolation): sum over thresholds of precision times the recall gained there.
    `ranking` is descending."""
    pos, neg = _grouped(ranking, weights)
    tp = np.cumsum(pos, axis=1)
    fp = np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        total = tp[:, -1]
        return np.where(total > 0, (pos * precision).sum(axis=1) / total, np.nan)


# metric -> (rank by descending score?, the metric of a ranking under weights)
METRICS: dict[str, tuple[bool, Callable[[Ranking, np.ndarray], np.ndarray]]] = {
    "roc_auc": (False, weighted_roc_auc),
    "pr_auc": (True, weighted_average_precision),
}


def resample_weights(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """How often each of n rows is drawn in each resample, with replacement: (b x n) blocks of
    resamples, at most CHUNK_CELLS weights each."""
    rng = np.random.default_rng(seed)
    step = max(1, CHUNK_CELLS // max(n, 1))
    for first in range(0, resamples, step):
        b = min(step, resamples - first)
        draws = rng.integers(0, n, size=(b, n))
        flat = (draws + (np.arange(b) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype("float64")


def weighted_brier(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Brier score per row of `weights`: sum_i w_i (p_i - y_i)^2 / sum_i w_i."""
    return (weights @ (proba - y) ** 2) / weights.sum(axis=1)


def weighted_log_loss(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Log loss per row of `weights`, probabilities clipped to [1e-15, 1 - 1e-15] as sklearn."""
    p = np.clip(proba, 1e-15, 1 - 1e-15)
    return (weights @ -(y * np.log(p) + (1 - y) * np.log(1 - p))) / weights.sum(axis=1)


LOSSES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "brier": weighted_brier,
    "log_loss": weighted_log_loss,
}


@dataclass(frozen=True)
class Resampled:
    """Observed differences and their bootstrap draws, all from one stream of resample weights.

    `gain`: candidate - champion on the ranking metric (higher is better); `loss`: candidate -
    champion on the calibration loss (lower is better); `drops[name]`: champion - candidate on
    the ranking metric within a slice. Draws with a single class in the rows they weigh are NaN.
    """

    observed_gain: float
    gain: np.ndarray
    observed_loss: float
    loss: np.ndarray
    observed_drops: dict[str, float]
    drops: dict[str, np.ndarray]


def paired_resamples(
    y_true: np.ndarray,
    proba_candidate: np.ndarray,
    proba_champion: np.ndarray,
    metric: str,
    loss: str,
    groups: dict[str, np.ndarray],
    params: BootstrapParams,
) -> Resampled:
    """Both models on the same resamples: the overall gain, the calibration loss difference and
    each slice's drop (`groups`: slice name -> row mask) come from the very same draws, so the
    slice intervals and the overall one describe the same hypothetical test sets."""
    if metric not in METRICS or loss not in LOSSES:
        raise ConfigError(
            f"bootstrap metric {metric!r} / loss {loss!r} unsupported; use one of "
            f"{sorted(METRICS)} / {sorted(LOSSES)}"
        )
    y, cand = check_scores(y_true, proba_candidate, "proba_candidate")
    _, champ = check_scores(y_true, proba_champion, "proba_champion")
    parts = {"": np.ones(y.size, dtype=bool), **groups}
    gains = {
        name: _metric_gain(y[rows], cand[rows], champ[rows], metric) for name, rows in parts.items()
    }
    draws: dict[str, list[np.ndarray]] = {name: [] for name in [*parts, "loss"]}
    loss_fn = LOSSES[loss]
    for weights in resample_weights(y.size, params.resamples, params.seed):
        for name, rows in parts.items():
            draws[name].append(gains[name](weights[:, rows]))
        draws["loss"].append(loss_fn(y, cand, weights) - loss_fn(y, champ, weights))
    ones = np.ones((1, y.size))
    observed = {name: float(gains[name](ones[:, rows])[0]) for name, rows in parts.items()}
    if np.isnan(observed[""]):
        raise ConfigError(f"{metric} is undefined on a test set with a single class")
    flat = {name: np.concatenate(chunks) for name, chunks in draws.items()}
    return Resampled(
        observed_gain=observed[""],
        gain=flat[""],
        observed_loss=float(loss_fn(y, cand, ones)[0] - loss_fn(y, champ, ones)[0]),
        loss=flat["loss"],
        observed_drops={name: -observed[name] for name in groups},
        drops={name: -flat[name] for name in groups},
    )


def _metric_gain(
    y: np.ndarray, cand: np.ndarray, champ: np.ndarray, metric: str
) -> Callable[[np.ndarray], np.ndarray]:
    """candidate - champion on `metric` under a block of weights over these rows."""
    descending, score = METRICS[metric]
    ours, theirs = _ranking(y, cand, descending), _ranking(y, champ, descending)
    return lambda weights: score(ours, weights) - score(theirs, weights)


def interval(draws: np.ndarray, confidence: float) -> tuple[float, float, int]:
    """Two-sided percentile interval of the draws (NumPy's linear quantiles) and how many draws
    entered it: draws that are NaN (a resample with a single class) are left out."""
    valid = draws[~np.isnan(draws)]
    if valid.size < draws.size:
        log.debug("%d of %d resamples had a single class", draws.size - valid.size, draws.size)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(valid, [tail, 1.0 - tail])
    return float(low), float(high), int(valid.size)


def p_value_above(draws: np.ndarray, bound: float) -> float:
    """One-sided bootstrap p-value of "the true value is at most `bound`":
    (1 + #{draws <= bound}) / (1 + #draws), NaN draws left out. Small when nearly every
    resample lies above the bound: at most alpha when (up to the +1) the alpha-quantile of the
    draws, the one-sided percentile interval's lower bound, lies above it."""
    valid = draws[~np.isnan(draws)]
    return float((1 + np.count_nonzero(valid <= bound)) / (1 + valid.size))
