"""Decay: live metrics of the served model from delayed labels joined to logged predictions.

Only predictions made within the live window count, each joined to the latest label for its
request id (a request that carried several records is labelled on its first). Metrics are
computed per model version and per time window; the serving version decays when, with enough
labels, a live metric falls past the floor promotion used (the dataset spec's `floors`,
recorded in the version's reference profile).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.config import Params
from flywheel.monitoring.feedback import read_feedback
from flywheel.monitoring.logread import read_log

LIVE_METRICS = ("roc_auc", "pr_auc", "brier")
CEILINGS = frozenset({"brier"})  # lower is better: decay is rising past the ceiling


def live_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Labelled rows, ROC-AUC, PR-AUC, Brier and the share of positive labels (None if empty)."""
    from flywheel.evaluation.metrics import metrics_or_none

    if y.size == 0:
        return {"labelled_rows": 0, **dict.fromkeys(LIVE_METRICS), "positive_rate": None}
    values = metrics_or_none(y.astype("int64"), p.astype("float64"), threshold=0.5)
    return {
        "labelled_rows": int(y.size),
        **{name: values[name] for name in LIVE_METRICS},
        "positive_rate": float(y.mean()),
    }


def breaches(metrics: dict[str, Any], floors: dict[str, float]) -> list[str]:
    """Metrics past their floor (or above their ceiling, for Brier)."""
    out = []
    for name, floor in floors.items():
        value = metrics.get(name)
        if value is None:
            continue
        if (value > floor) if name in CEILINGS else (value < floor):
            out.append(name)
    return out


def labelled_predictions(
    log_folder: Path, feedback_folder: Path, positive_class: str, since: datetime
) -> pd.DataFrame:
    """Logged predictions since `since` that have a label: time, version, probability, y."""
    columns = ["request_id", "time", "model_version", "probability"]
    empty = pd.DataFrame(columns=[*columns, "y"])
    labels = read_feedback(feedback_folder)
    if labels is None:
        return empty
    table = read_log(log_folder, columns, since=since)
    if table is None:
        return empty
    logged = table.to_pandas().astype({"request_id": "str", "model_version": "str"})
    logged = logged.drop_duplicates("request_id", keep="first")
    joined = logged.merge(labels[["request_id", "label"]], on="request_id", how="inner")
    return joined.assign(y=(joined["label"] == positive_class).astype("int64"))


def live_report(
    log_folder: Path,
    feedback_folder: Path,
    params: Params,
    target: tuple[str, dict[str, float]],
    version: str,
    now: datetime,
) -> dict[str, Any]:
    """The `live` section of the monitor report (see `report.compute_report`).

    `target` is the positive class and the floors the version was promoted against.
    """
    positive_class, promoted_floors = target
    cfg = params.monitor
    since = now - timedelta(minutes=cfg.live_window_minutes)
    rows = labelled_predictions(log_folder, feedback_folder, positive_class, since)
    floors = {k: v for k, v in promoted_floors.items() if k in LIVE_METRICS}
    serving = _metrics(rows[rows["model_version"] == version])
    found = breaches(serving, floors)
    per_version = {str(v): _metrics(group) for v, group in rows.groupby("model_version", sort=True)}
    return {
        **serving,
        "floors": floors,
        "breaches": found,
        "decayed": bool(found) and serving["labelled_rows"] >= cfg.min_labelled_rows,
        "per_version": per_version,
        "windows": _windows(rows, cfg.window_minutes),
    }


def _metrics(rows: pd.DataFrame) -> dict[str, Any]:
    return live_metrics(rows["y"].to_numpy(), rows["probability"].to_numpy(dtype="float64"))


def _windows(rows: pd.DataFrame, minutes: float) -> list[dict[str, Any]]:
    """Live metrics per model version and per window of `minutes`, oldest first."""
    if rows.empty:
        return []
    width = pd.Timedelta(minutes=minutes)
    start = rows["time"].dt.floor(width)
    out = []
    for (began, version), group in rows.groupby([start, "model_version"], sort=True):
        out.append(
            {
                "start": began.isoformat(),
                "end": (began + width).isoformat(),
                "model_version": str(version),
                **_metrics(group),
            }
        )
    return out
