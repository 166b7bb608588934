"""Drift of a window of logged rows against a version's reference profile.

Per feature: PSI and Jensen-Shannon distance on the reference bins (missing values are a bin of
their own), normalized Wasserstein for numerics, the unseen-category rate for categoricals, and
the change in missing rate; the same for the score. A feature is drifted when its PSI passes an
alarm level calibrated for this window's size, and only when the window is large enough.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flywheel.config import MonitorParams
from flywheel.monitoring.distances import (
    calibrated_threshold,
    js_distance,
    psi,
    shares,
    wasserstein_normalized,
)
from flywheel.monitoring.profile import categorical_counts, numeric_counts, quantiles

SCORE_COLUMN = "probability"


def window_drift(
    profile: dict[str, Any], table: Any, cfg: MonitorParams
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Scores per feature and for the model's score over `table` (a pyarrow table or None)."""
    rows = 0 if table is None else int(table.num_rows)
    enough = rows >= cfg.min_rows
    rng = np.random.default_rng(cfg.seed)
    features = {}
    for name, reference in profile["features"].items():
        column = None if table is None else table.column(name)
        features[name] = _drift(reference, column, rows, enough, cfg, rng)
    score_ref = {"kind": "numeric", **profile["score"], "missing_rate": 0.0}
    column = None if table is None else table.column(SCORE_COLUMN)
    score = _drift(score_ref, column, rows, enough, cfg, rng)
    return features, {k: score[k] for k in ("psi", "js", "threshold", "drifted")}


def _drift(
    reference: dict[str, Any],
    column: Any,
    rows: int,
    enough: bool,
    cfg: MonitorParams,
    rng: np.random.Generator,
) -> dict[str, Any]:
    numeric = reference["kind"] == "numeric"
    result: dict[str, Any] = {"psi": None, "js": None}
    if numeric:
        result["wasserstein"] = None
    else:
        result["unseen_rate"] = None
    result |= {"missing_rate_change": None, "threshold": None, "drifted": False}
    if column is None or rows == 0:
        return result
    ref_shares = np.asarray(reference["shares"], dtype="float64")
    if numeric:
        values = column.to_numpy()
        counts = numeric_counts(reference["edges"], values)
        grid, _ = quantiles(values)
        if grid and reference["quantiles"]:
            result["wasserstein"] = wasserstein_normalized(
                np.asarray(reference["quantiles"]), np.asarray(grid), reference["std"]
            )
    else:
        counts = categorical_counts(reference["categories"], column)
        present = rows - int(counts[-1])
        result["unseen_rate"] = float(counts[-2] / present) if present else 0.0
    current = shares(counts)
    threshold = calibrated_threshold(
        ref_shares, rows, resamples=cfg.resamples, k=cfg.k, floor=cfg.min_psi, rng=rng
    )
    value = float(psi(ref_shares, current))
    result |= {
        "psi": value,
        "js": float(js_distance(ref_shares, current)),
        "missing_rate_change": float(current[-1] - reference["missing_rate"]),
        "threshold": threshold,
        "drifted": bool(enough and value > threshold),
    }
    return result
