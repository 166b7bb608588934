"""Metrics per value of a categorical column: a model can win overall and fail a segment."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from flywheel.config import EvaluateParams
from flywheel.errors import ConfigError, DataError
from flywheel.evaluation.bootstrap import CHECKS, Resampled, interval, p_value_above
from flywheel.evaluation.metrics import (
    metrics_or_none,
    multiclass_metrics_or_none,
    regression_metrics,
)

log = logging.getLogger(__name__)

MISSING = "(missing)"


def slice_metrics(
    frame: pd.DataFrame,
    y_true: np.ndarray,
    scores: np.ndarray,
    columns: list[str],
    threshold: float,
    min_rows: int,
    kind: str = "binary",
) -> list[dict]:
    """One record per (column, value) with its row counts and the task's metrics.

    Rows align with `frame` by position. Slices smaller than `min_rows` are skipped: their
    metrics are noise. A metric undefined in a slice (roc_auc with a single class) is None.
    """
    y, s = CHECKS[kind](y_true, scores)
    _check_columns(frame, y, columns)
    records: list[dict] = []
    for column in columns:
        keys = slice_keys(frame, column)
        for value in sorted(set(keys)):
            mask = keys == value
            rows = int(mask.sum())
            if rows < min_rows:
                log.debug("slice %s=%s skipped: %d rows < %d", column, value, rows, min_rows)
                continue
            records.append(
                {
                    "column": column,
                    "value": value,
                    **counts(kind, y[mask]),
                    **SLICE_METRICS[kind](y[mask], s[mask], threshold),
                }
            )
    return records


def model_slices(
    frame: pd.DataFrame,
    y: np.ndarray,
    models: dict[str, np.ndarray],
    params: EvaluateParams,
    kind: str = "binary",
) -> list[dict]:
    """`slice_metrics` of every scored model (candidate, champion), each record naming it."""
    return [
        {"model": name, **record}
        for name, scores in models.items()
        for record in slice_metrics(
            frame, y, scores, params.slices, params.threshold, params.min_slice_rows, kind
        )
    ]


def counts(kind: str, y: np.ndarray) -> dict[str, int]:
    """What sizes a slice: rows, and for a binary target its positives (and negatives)."""
    if kind == "binary":
        return {"rows": int(y.size), "positives": int(y.sum())}
    return {"rows": int(y.size)}


def judged_counts(kind: str, y: np.ndarray) -> dict[str, int]:
    """What decides whether a slice is judged: positives and negatives (binary), else rows."""
    if kind == "binary":
        positives = int(y.sum())
        return {"positives": positives, "negatives": int(y.size) - positives}
    return {"rows": int(y.size)}


SLICE_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, float], dict[str, float | None]]] = {
    "binary": metrics_or_none,
    "multiclass": lambda y, p, _: multiclass_metrics_or_none(y, p),
    "regression": lambda y, v, _: dict(regression_metrics(y, v)),
}


def _check_columns(frame: pd.DataFrame, y: np.ndarray, columns: list[str]) -> None:
    if len(frame) != y.size:
        raise DataError(f"frame has {len(frame)} rows for {y.size} labels; they must align")
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise ConfigError(
            f"evaluate.slices: column(s) {', '.join(map(repr, unknown))} not in the test frame "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )


def slice_keys(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Each row's value of `column` as text, missing values as MISSING: the slice it is in."""
    values = frame[column].astype("object").where(frame[column].notna(), MISSING)
    return values.astype(str).to_numpy()


def judged_slices(
    frame: pd.DataFrame,
    y_true: np.ndarray,
    columns: list[str],
    min_pos: int,
    min_neg: int,
    kind: str = "binary",
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Row masks of the slices large enough to judge, by "column=value"; and the others with
    their counts. Binary: at least `min_pos` positives and `min_neg` negatives (a slice with ten
    positives has a ROC-AUC that swings by 0.1 between resamples: judging it would veto on
    noise); multiclass and regression: at least `min_pos + min_neg` rows."""
    y = np.asarray(y_true)
    _check_columns(frame, y, columns)
    groups: dict[str, np.ndarray] = {}
    skipped: list[dict[str, Any]] = []
    for column in columns:
        keys = slice_keys(frame, column)
        for value in sorted(set(keys)):
            rows = keys == value
            sizes = judged_counts(kind, y[rows])
            if "rows" in sizes:
                large = sizes["rows"] >= min_pos + min_neg
            else:
                large = sizes["positives"] >= min_pos and sizes["negatives"] >= min_neg
            if large:
                groups[f"{column}={value}"] = rows
            else:
                skipped.append({"slice": f"{column}={value}", **sizes})
    return groups, skipped


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: sorted ascending, the i-th (from 1) of m becomes
    max over j <= i of min(1, (m - j + 1) * p_(j)). Rejecting those <= alpha keeps the chance of
    any false rejection at most alpha, whatever the dependence between the slices."""
    p = np.asarray(p_values, dtype="float64")
    order = np.argsort(p, kind="mergesort")
    factors = p.size - np.arange(p.size)
    adjusted = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def slice_verdicts(
    resampled: Resampled,
    y: np.ndarray,
    groups: dict[str, np.ndarray],
    tolerance: float,
    confidence: float,
    kind: str = "binary",
) -> list[dict[str, Any]]:
    """Per judged slice: the drop (champion - candidate), its interval, the one-sided bootstrap
    p-value of "the drop is at most `tolerance`", Holm-adjusted over the slices, and whether it
    vetoes (adjusted p <= (1 - confidence) / 2: the same one-sided level as the other checks)."""
    names = list(resampled.drops)
    raw = np.array([p_value_above(resampled.drops[n], tolerance) for n in names])
    adjusted = holm(raw)
    alpha = (1.0 - confidence) / 2.0
    records = []
    for name, p, p_holm in zip(names, raw, adjusted, strict=True):
        low, high, used = interval(resampled.drops[name], confidence)
        records.append(
            {
                "slice": name,
                **judged_counts(kind, y[groups[name]]),
                "drop": resampled.observed_drops[name],
                "ci_low": low,
                "ci_high": high,
                "resamples": used,
                "p_value": float(p),
                "p_holm": float(p_holm),
                "veto": bool(p_holm <= alpha),
            }
        )
    return records
