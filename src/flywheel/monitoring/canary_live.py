"""The canary's live accuracy against the champion's, on requests labelled through `/feedback`.

No Prometheus series carries labels per role, so this reads the inference log (rows answered in
role `canary` by the canary's version, and rows answered in role `champion`) since the canary
started, joins each request's first record to its latest label (as monitoring/live.py does),
and counts the answers equal to their label. Both sides cover the same window. A regression's
answer is never equal to its label: `live_errors` gives its absolute errors instead, judged
by canary_mae.py against a relative bound (`LiveErrors` lives here, beside `LiveAccuracy`).

The canary must keep its accuracy at most d = canary.max_metric_drop below the champion's. Two
rules, as for errors (canary_errors.py), once both sides have min_labelled_rows labels:

- **rollback** (`metric_breach`): the drop is significantly over d. With Agresti-Caffo's
  estimates (one right and one wrong answer added to each side: p = (right + 1) / (rows + 2)),
  z = (p_champion - p_canary - d) / sqrt(p_champion (1 - p_champion) / (rows_champion + 2) +
  p_canary (1 - p_canary) / (rows_canary + 2)), and the canary rolls back when P(Z >= z) <=
  ALPHA. A few hundred labels' accuracies are noisy (0.04 apart by chance at 200 each), so
  holding the observed drop to d at every evaluation, as an earlier version did, rolled back
  18-37% of canaries as accurate as the champion (README "Canary");
- **hold** (`metric_excess`, when a step would pass): a step never passes while the observed
  drop is over d; it gathers labels until the test rolls it back or the drop falls within d.
"""

from __future__ import annotations

import math
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


@dataclass(frozen=True)
class LiveErrors:
    """Per role: labelled requests, and the sum of their absolute errors and of its squares."""

    canary_rows: int
    canary_abs: float
    canary_sq: float
    champion_rows: int
    champion_abs: float
    champion_sq: float


def labelled_enough(live: LiveAccuracy | LiveErrors, min_rows: int) -> bool:
    """Both roles have `min_rows` labelled requests (monitor.min_labelled_rows, the count the
    decay verdict needs too): fewer labels say nothing either way."""
    return min(live.canary_rows, live.champion_rows) >= min_rows


ALPHA = 0.01  # per evaluation: how often a canary exactly d below the champion rolls back


def drop_z(live: LiveAccuracy, max_drop: float) -> float:
    """Agresti-Caffo's z of the champion's accuracy minus the canary's, less `max_drop`."""
    canary = (live.canary_right + 1) / (live.canary_rows + 2)
    champion = (live.champion_right + 1) / (live.champion_rows + 2)
    spread = math.sqrt(champion * (1 - champion) / (live.champion_rows + 2)
                       + canary * (1 - canary) / (live.canary_rows + 2))
    return (champion - canary - max_drop) / spread


def metric_breach(live: LiveAccuracy | None, max_drop: float, min_rows: int) -> str | None:
    """Why the canary's live accuracy rolls it back, in one line; None unless its drop below the
    champion's is significantly over `max_drop` (judged once `labelled_enough`)."""
    if live is None or not labelled_enough(live, min_rows):
        return None
    from scipy.stats import norm

    p = float(norm.sf(drop_z(live, max_drop)))
    if p > ALPHA:
        return None
    return f"{_seen(live)}, over the bound {max_drop:g} (canary.max_metric_drop) at p = {p:.2g}"


def metric_excess(live: LiveAccuracy | None, max_drop: float, min_rows: int) -> str | None:
    """Why a step may not pass on its live accuracy yet: the observed drop is over `max_drop`,
    though not significantly (that would be `metric_breach`); None when it keeps it."""
    if live is None or not labelled_enough(live, min_rows):
        return None
    drop = live.champion_right / live.champion_rows - live.canary_right / live.canary_rows
    if round(drop, 12) <= max_drop:  # 0.90 - 0.86 is 0.04000000000000004
        return None
    return (f"{_seen(live)}, over the bound {max_drop:g} (canary.max_metric_drop), not "
            "significant yet")


def _seen(live: LiveAccuracy) -> str:
    canary = live.canary_right / live.canary_rows
    champion = live.champion_right / live.champion_rows
    return (f"live accuracy {canary:.4f} on {live.canary_rows} labelled requests, "
            f"{champion - canary:.4f} below the champion's {champion:.4f} on "
            f"{live.champion_rows}")


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


def live_errors(log_folder: Path, feedback_folder: Path, version: str,
                since: datetime) -> LiveErrors | None:
    """A regression's absolute errors per role since `since` (canary_mae.py judges them);
    None without labels. A label that is not a number is left out, as the decay report does."""
    labels = read_feedback(feedback_folder)
    if labels is None:
        return None
    labels = labels[["request_id", "label"]].astype({"request_id": "str"})
    canary = _labelled(log_folder, CANARY_ROLE, since, labels)
    canary = canary[canary["model_version"] == version]
    champion = _labelled(log_folder, CHAMPION_ROLE, since, labels)
    return LiveErrors(*_abs_errors(canary), *_abs_errors(champion))


def _abs_errors(rows: pd.DataFrame) -> tuple[int, float, float]:
    """Count, sum and sum of squares of |prediction - label| over the numeric pairs."""
    errors = (pd.to_numeric(rows["prediction"], errors="coerce")
              - pd.to_numeric(rows["label"], errors="coerce")).abs().dropna()
    return len(errors), float(errors.sum()), float((errors**2).sum())


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
