"""Metrics per value of a categorical column: a model can win overall and fail a segment."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from flywheel.errors import ConfigError, DataError
from flywheel.evaluation.bootstrap import Resampled, interval, p_value_above
from flywheel.evaluation.metrics import check_scores, metrics_or_none

log = logging.getLogger(__name__)

MISSING = "(missing)"


def slice_metrics(
    frame: pd.DataFrame,
    y_true: np.ndarray,
    proba: np.ndarray,
    columns: list[str],
    threshold: float,
    min_rows: int,
) -> list[dict]:
    """One record per (column, value) with rows, positives and the metrics.

    Rows align with `frame` by position. Slices smaller than `min_rows` are skipped: their
    metrics are noise. roc_auc (and pr_auc without positives) is None in a one-class slice.
    """
    y, p = check_scores(y_true, proba)
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
                    "rows": rows,
                    "positives": int(y[mask].sum()),
                    **metrics_or_none(y[mask], p[mask], threshold),
                }
            )
    return records


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
    frame: pd.DataFrame, y_true: np.ndarray, columns: list[str], min_pos: int, min_neg: int
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Row masks of the slices with at least `min_pos` positives and `min_neg` negatives, by
    "column=value"; and the others with their counts. A slice with ten positives has a ROC-AUC
    that swings by 0.1 between resamples: judging it would veto on noise."""
    y = np.asarray(y_true)
    _check_columns(frame, y, columns)
    groups: dict[str, np.ndarray] = {}
    skipped: list[dict[str, Any]] = []
    for column in columns:
        keys = slice_keys(frame, column)
        for value in sorted(set(keys)):
            rows = keys == value
            positives = int(y[rows].sum())
            negatives = int(rows.sum()) - positives
            if positives >= min_pos and negatives >= min_neg:
                groups[f"{column}={value}"] = rows
            else:
                skipped.append(
                    {"slice": f"{column}={value}", "positives": positives, "negatives": negatives}
                )
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
        positives = int(y[groups[name]].sum())
        records.append(
            {
                "slice": name,
                "positives": positives,
                "negatives": int(groups[name].sum()) - positives,
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
