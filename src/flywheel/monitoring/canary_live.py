"""The canary's live accuracy against the champion's, on requests labelled through `/feedback`.

No Prometheus series carries labels per role, so this reads the inference log (rows answered in
role `canary` by the canary's version, and rows answered in role `champion`) since the canary
started, joins each request's first record to its latest label (as monitoring/live.py does),
and counts the answers equal to their label. Both sides cover the same window. Classification
only: a regression's answer is never equal to its label, and an error in the target's units
has no bound a share could state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from flywheel.monitoring.feedback import read_feedback
from flywheel.monitoring.logread import CANARY_ROLE, CHAMPION_ROLE, read_log

COLUMNS = ["request_id", "model_version", "prediction"]


@dataclass(frozen=True)
class LiveAccuracy:
    """Labelled requests and how many were answered right, per role."""

    canary_rows: int
    canary_right: int
    champion_rows: int
    champion_right: int


def metric_breach(live: LiveAccuracy | None, max_drop: float, min_rows: int) -> str | None:
    """Why the canary's live accuracy rolls it back, in one line; None while it keeps the bound.

    Judged only once both sides have `min_rows` labelled requests (monitor.min_labelled_rows,
    the count the decay verdict needs too): fewer labels say nothing either way."""
    if live is None or min(live.canary_rows, live.champion_rows) < min_rows:
        return None
    canary = live.canary_right / live.canary_rows
    champion = live.champion_right / live.champion_rows
    if round(champion - canary, 12) <= max_drop:  # 0.90 - 0.86 is 0.04000000000000004
        return None
    return (f"live accuracy {canary:.4f} on {live.canary_rows} labelled requests, "
            f"{champion - canary:.4f} below the champion's {champion:.4f} on "
            f"{live.champion_rows}, over the bound {max_drop:g} (canary.max_metric_drop)")


def live_accuracy(log_folder: Path, feedback_folder: Path, version: str,
                  since: datetime) -> LiveAccuracy | None:
    """Counts for the canary `version` and the champion since `since`; None without labels."""
    labels = read_feedback(feedback_folder)
    if labels is None:
        return None
    labels = labels[["request_id", "label"]].astype({"request_id": "str", "label": "str"})
    canary = _labelled(log_folder, CANARY_ROLE, since, labels)
    canary = canary[canary["model_version"] == version]
    champion = _labelled(log_folder, CHAMPION_ROLE, since, labels)
    return LiveAccuracy(len(canary), _right(canary), len(champion), _right(champion))


def _labelled(log_folder: Path, role: str, since: datetime, labels: pd.DataFrame) -> pd.DataFrame:
    """The first record of each request answered in `role`, with its label."""
    table = read_log(log_folder, COLUMNS, since=since, role=role)
    if table is None:
        return pd.DataFrame(columns=[*COLUMNS, "label"])
    logged = table.to_pandas().astype({"request_id": "str", "model_version": "str"})
    logged = logged.drop_duplicates("request_id", keep="first")
    return logged.merge(labels, on="request_id", how="inner")


def _right(rows: pd.DataFrame) -> int:
    return int((rows["prediction"].astype(str) == rows["label"]).sum())
