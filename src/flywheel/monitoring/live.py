"""Decay: live metrics of the served model from delayed labels joined to logged predictions.

Only predictions made within the live window count, each joined to the latest label for its
request id (a request that carried several records is labelled on its first). The metrics are
the task's (`TASK_LIVE_METRICS`: binary ROC-AUC, PR-AUC, Brier; multiclass macro-F1 and
accuracy; regression RMSE and MAE), computed per model version and per time window; the
serving version decays when, with enough labels, a live metric falls past the floor promotion
used (the dataset spec's `floors`, recorded in the version's reference profile).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.config import Params
from flywheel.data.answers import MONITORED_COLUMN
from flywheel.data.task import Task, lower_is_better
from flywheel.monitoring.feedback import read_feedback
from flywheel.monitoring.logread import read_log

# The live metrics of each task (a subset of what evaluation computes, that labels can judge).
TASK_LIVE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "brier"),
    "multiclass": ("macro_f1", "accuracy"),
    "regression": ("rmse", "mae"),
}
LIVE_METRICS = tuple(m for names in TASK_LIVE_METRICS.values() for m in names)


def live_metrics(task: Task, y: np.ndarray, answered: np.ndarray) -> dict[str, Any]:
    """Labelled rows and the task's live metrics (None without rows); binary adds the share of
    positive labels. `y` is 0/1 (binary), class labels (multiclass) or numbers (regression);
    `answered` the positive-class probability, the predicted class or the predicted value."""
    names = TASK_LIVE_METRICS[task.kind]
    extra = {"positive_rate": float(y.mean()) if y.size else None} if task.kind == "binary" else {}
    if y.size == 0:
        return {"labelled_rows": 0, **dict.fromkeys(names), **extra}
    return {"labelled_rows": int(y.size), **_METRICS[task.kind](y, answered), **extra}


def _binary(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    from flywheel.evaluation.metrics import metrics_or_none

    values = metrics_or_none(y.astype("int64"), p.astype("float64"), threshold=0.5)
    return {name: values[name] for name in TASK_LIVE_METRICS["binary"]}


def _multiclass(y: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy, and macro-F1 over the classes seen in the labels or the answers (a class
    neither holds has no F1 to average)."""
    from sklearn.metrics import f1_score

    y, predicted = y.astype(str), predicted.astype(str)
    return {"macro_f1": float(f1_score(y, predicted, average="macro", zero_division=0)),
            "accuracy": float(np.mean(y == predicted))}


def _regression(y: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    errors = predicted.astype("float64") - y.astype("float64")
    return {"rmse": float(np.sqrt(np.mean(errors**2))), "mae": float(np.mean(np.abs(errors)))}


_METRICS = {"binary": _binary, "multiclass": _multiclass, "regression": _regression}


def breaches(metrics: dict[str, Any], floors: dict[str, float]) -> list[str]:
    """Metrics past their floor (above their ceiling, for the lower-is-better ones)."""
    out = []
    for name, floor in floors.items():
        value = metrics.get(name)
        if value is None:
            continue
        if (value > floor) if lower_is_better(name) else (value < floor):
            out.append(name)
    return out


def labelled_predictions(
    log_folder: Path, feedback_folder: Path, task: Task, since: datetime
) -> pd.DataFrame:
    """Logged predictions since `since` that have a label: time, version, `answered`
    (`MONITORED_COLUMN` of the log) and `y` (binary: 1 for the positive class)."""
    columns = ["request_id", "time", "model_version", MONITORED_COLUMN[task.kind]]
    empty = pd.DataFrame(columns=[*columns[:3], "answered", "y"])
    labels = read_feedback(feedback_folder)
    if labels is None:
        return empty
    table = read_log(log_folder, columns, since=since)
    if table is None:
        return empty
    logged = table.to_pandas().astype({"request_id": "str", "model_version": "str"})
    logged = logged.drop_duplicates("request_id", keep="first").rename(
        columns={MONITORED_COLUMN[task.kind]: "answered"})
    joined = logged.merge(labels[["request_id", "label"]], on="request_id", how="inner")
    if task.kind == "binary":
        return joined.assign(y=(joined["label"].astype(str) == task.classes[1]).astype("int64"))
    return joined.assign(y=joined["label"])


def live_report(
    log_folder: Path,
    feedback_folder: Path,
    params: Params,
    target: tuple[Task, dict[str, float]],
    version: str,
    now: datetime,
) -> dict[str, Any]:
    """The `live` section of the monitor report (see `report.compute_report`).

    `target` is the version's task and the floors it was promoted against.
    """
    task, promoted_floors = target
    cfg = params.monitor
    since = now - timedelta(minutes=cfg.live_window_minutes)
    rows = labelled_predictions(log_folder, feedback_folder, task, since)
    floors = {k: v for k, v in promoted_floors.items() if k in TASK_LIVE_METRICS[task.kind]}
    serving = _metrics(task, rows[rows["model_version"] == version])
    found = breaches(serving, floors)
    per_version = {str(v): _metrics(task, group)
                   for v, group in rows.groupby("model_version", sort=True)}
    return {
        **serving,
        "task": task.kind,
        "metrics": list(TASK_LIVE_METRICS[task.kind]),
        "floors": floors,
        "breaches": found,
        "decayed": bool(found) and serving["labelled_rows"] >= cfg.min_labelled_rows,
        "per_version": per_version,
        "windows": _windows(task, rows, cfg.window_minutes),
    }


def _metrics(task: Task, rows: pd.DataFrame) -> dict[str, Any]:
    return live_metrics(task, rows["y"].to_numpy(), rows["answered"].to_numpy())


def _windows(task: Task, rows: pd.DataFrame, minutes: float) -> list[dict[str, Any]]:
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
                **_metrics(task, group),
            }
        )
    return out
