"""Metrics per value of a categorical column: a model can win overall and fail a segment."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from flywheel.errors import ConfigError, DataError
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
    if len(frame) != y.size:
        raise DataError(f"frame has {len(frame)} rows for {y.size} labels; they must align")
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise ConfigError(
            f"evaluate.slices: column(s) {', '.join(map(repr, unknown))} not in the test frame "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    records: list[dict] = []
    for column in columns:
        values = frame[column].astype("object").where(frame[column].notna(), MISSING)
        keys = values.astype(str).to_numpy()
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
