"""What the last triggered retrain did with its data, for Prometheus: never a silent skip.

The training flow, when started for a reason (an alert, a decay), writes `retrain.json` next
to the monitor report; the monitor exporter serves it at each scrape. So "no new data since v3"
is a series an alert or a dashboard can show, not only a line in a run's log:

Every series carries `model_name` (each model keeps its own `retrain.json`):

- `flywheel_retrain_status{outcome, since_version}` 1 for the last triggered run's outcome:
  `new_rows` (labelled traffic appended), `no_new_data` (nothing appended, nothing ran),
  `no_new_traffic` (nothing appended, but the steps ran on other changes) or `refused`
  (traffic could not be learned from, e.g. personal features);
- `flywheel_retrain_new_rows` rows that run appended;
- `flywheel_retrain_timestamp_seconds` when it ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from flywheel.atomic import write_atomically
from flywheel.monitoring.gauges import Folders, GaugeSet, each_model

STATUS_FILE = "retrain.json"
OUTCOMES = ("new_rows", "no_new_data", "no_new_traffic", "refused")


def write_status(folder: Path, status: dict[str, Any]) -> Path:
    """Replace the status whole: outcome, new_rows, since_version, finished_at (ISO), ..."""
    if status["outcome"] not in OUTCOMES:
        raise ValueError(f"retrain outcome {status['outcome']!r}: expected one of {OUTCOMES}")
    path = folder / STATUS_FILE
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda p: p.write_text(json.dumps(status, indent=2, default=str)))
    return path


def read_status(folder: Path) -> dict[str, Any] | None:
    path = folder / STATUS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


class RetrainStatusCollector:
    """A prometheus_client collector over each model's `retrain.json` (read at scrape time)."""

    def __init__(self, folders: Folders) -> None:
        self.folders = folders

    def collect(self) -> Iterator[Any]:
        yield from each_model(self.folders, read_status, add_status, "retrain status")


def add_status(gauges: GaugeSet, name: str, status: dict[str, Any]) -> None:
    """The three gauges of one model's status (see the module docstring)."""
    since = str(status.get("since_version") or "none")
    model = {"model_name": name}
    gauges.set(
        "flywheel_retrain_status",
        "1 for the outcome of the last triggered retrain's data refresh",
        {**model, "outcome": status["outcome"], "since_version": since},
        1.0,
    )
    gauges.set(
        "flywheel_retrain_new_rows",
        "Labelled traffic rows the last triggered retrain appended to the training table",
        model,
        status.get("new_rows", 0),
    )
    gauges.set(
        "flywheel_retrain_timestamp_seconds",
        "When the last triggered retrain ended",
        model,
        datetime.fromisoformat(status["finished_at"]).timestamp(),
    )
