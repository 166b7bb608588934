"""Drift of a window of logged rows against a version's reference profile.

Per feature: PSI and Jensen-Shannon distance on the reference bins (missing values are a bin of
their own), normalized Wasserstein for numerics, the share of values outside the kept levels
for categoricals, and the change in missing rate; the same for the score (the model's output
as logged, per task: positive-class probability, predicted class, predicted value). Each
feature and the score is tested: its PSI against the two-sample null (`null`), giving a
resampling p-value; the tests are judged together by Holm's rule (`verdict`), each at its Holm
level, whose empirical null quantile is reported as the feature's `threshold`. A feature is
drifted when Holm flags it, its PSI is above `monitor.min_psi` (an effect-size floor) and the
window has `min_rows` rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flywheel.config import MonitorParams
from flywheel.monitoring.distances import js_distance, psi, shares, wasserstein_normalized
from flywheel.monitoring.null import (
    alarm_level,
    null_psi,
    p_value,
    resamples_for,
    window_bucket,
)
from flywheel.monitoring.profile import (
    categorical_counts,
    numeric_counts,
    quantiles,
    score_column,
)
from flywheel.monitoring.verdict import holm

NOT_LOGGED = "not in the inference log (dropped before logging?): not monitored"
SCORE_KEYS = ("psi", "js", "p_value", "threshold", "drifted")


def window_drift(
    profile: dict[str, Any], table: Any, cfg: MonitorParams, skip: dict[str, str] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Per-feature results, the score's, and the test summary (with `excluded`: name -> why).

    `table` is a pyarrow table of the window (or None); features in `skip` are not tested.
    """
    rows = 0 if table is None else int(table.num_rows)
    logged = set() if table is None else set(table.column_names)
    excluded = dict(profile.get("excluded", {})) | dict(skip or {})
    references = {}
    for name, reference in profile["features"].items():
        if name in excluded:
            continue
        if table is not None and name not in logged:
            excluded[name] = NOT_LOGGED
            continue
        references[name] = reference
    score_rows = profile["score"].get("rows", profile["rows"])
    output = score_column(profile)
    references[output] = {"kind": "numeric", **profile["score"], "missing_rate": 0.0}
    columns = {n: None if table is None else table.column(n) for n in references}
    results = {n: statistics(ref, columns[n], rows) for n, ref in references.items()}
    summary = _judge(references, results, rows, cfg, (output, score_rows), profile["rows"])
    score = results.pop(output)
    summary["excluded"] = excluded
    return results, {k: score[k] for k in SCORE_KEYS}, summary


def _judge(
    references: dict[str, dict[str, Any]],
    results: dict[str, dict[str, Any]],
    rows: int,
    cfg: MonitorParams,
    score: tuple[str, int],
    feature_rows: int,
) -> dict[str, Any]:
    """p-values from each test's null, Holm across them, thresholds at each Holm level.

    `score` is the output column and the held-out rows its reference was counted on."""
    tested = [n for n, r in results.items() if r["psi"] is not None]
    resamples = resamples_for(cfg.alpha / max(len(tested), 1), cfg.resamples)
    bucket = window_bucket(rows)
    nulls = {
        n: null_psi(
            np.asarray(references[n]["shares"]),
            score[1] if n == score[0] else references[n].get("rows", feature_rows),
            bucket,
            resamples,
            cfg.seed,
        )
        for n in tested
    }
    p_values = [p_value(nulls[n], results[n]["psi"]) for n in tested]
    rejected, levels = holm(p_values, cfg.alpha)
    enough = rows >= cfg.min_rows
    for n, p, flagged, level in zip(tested, p_values, rejected, levels, strict=True):
        results[n] |= {
            "p_value": p,
            "level": float(level),
            "threshold": alarm_level(nulls[n], float(level)),
            "drifted": bool(enough and flagged and results[n]["psi"] > cfg.min_psi),
        }
    return {"tests": len(tested), "resamples": resamples, "calibrated_rows": bucket}


def statistics(reference: dict[str, Any], column: Any, rows: int) -> dict[str, Any]:
    """Distances of one window column from its reference (all None without rows)."""
    numeric = reference["kind"] == "numeric"
    result: dict[str, Any] = {"psi": None, "js": None}
    result |= {"wasserstein": None} if numeric else {"other_rate": None, "other_reference": None}
    result |= {"missing_rate_change": None, "p_value": None, "level": None}
    result |= {"threshold": None, "drifted": False}
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
        result["other_rate"] = float(counts[-2] / present) if present else 0.0
        ref_present = 1.0 - ref_shares[-1]
        result["other_reference"] = float(ref_shares[-2] / ref_present) if ref_present else 0.0
    current = shares(counts)
    return result | {
        "psi": float(psi(ref_shares, current)),
        "js": float(js_distance(ref_shares, current)),
        "missing_rate_change": float(current[-1] - reference["missing_rate"]),
    }
