"""One nested MLflow run per candidate the search fitted, under the version's training run.

The runs table then shows, for every candidate and not only the registered one, its valid
scores and the compute the search gave it (rows, seconds, rung reached) with why it stopped,
read from the train step's candidates.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def log_candidate_runs(candidates_file: Path) -> None:
    """A nested run per row of candidates.json, inside the active run (nothing if absent:
    a train step from before the search wrote no compute)."""
    import mlflow

    if not candidates_file.is_file():
        return
    for row in json.loads(candidates_file.read_text()):
        compute: dict[str, Any] = row.get("compute", {})
        with mlflow.start_run(run_name=f"candidate-{row['name']}", nested=True):
            mlflow.set_tags({"flywheel.candidate": row["name"],
                             "flywheel.selected": str(row["selected"]).lower(),
                             "flywheel.stopped": str(compute.get("stopped", ""))[:5000]})
            mlflow.log_metrics({f"valid_{k}": v for k, v in row["valid"].items()} | {
                f"compute_{k}": float(compute[k]) for k in ("rows", "seconds", "rung")
                if k in compute})
