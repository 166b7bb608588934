"""One nested MLflow run per candidate the search fitted, and per Optuna trial, under the
version's training run.

The runs table then shows, for every candidate and not only the registered one, its valid
scores and the compute the search gave it (rows, seconds, rung reached) with why it stopped,
read from the train step's candidates.json; and each trial of `train.search` (search.json)
with its settings, rows reached, score and whether it was pruned.
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
        with mlflow.start_run(run_name=f"candidate-{row['name']}", nested=True,
                              experiment_id=_parent_experiment()):
            mlflow.set_tags({"flywheel.candidate": row["name"],
                             "flywheel.selected": str(row["selected"]).lower(),
                             "flywheel.stopped": str(compute.get("stopped", ""))[:5000]})
            mlflow.log_metrics({f"valid_{k}": v for k, v in row["valid"].items()} | {
                f"compute_{k}": float(compute[k]) for k in ("rows", "seconds", "rung")
                if k in compute})


def log_trial_runs(search_file: Path) -> None:
    """A nested run per Optuna trial, inside the active run (nothing when the search was off)."""
    import mlflow

    if not search_file.is_file():
        return
    study = json.loads(search_file.read_text())
    for trial in study["trials"]:
        with mlflow.start_run(run_name=f"trial-{study['candidate']}-{trial['number']}",
                              nested=True, experiment_id=_parent_experiment()):
            mlflow.log_params(trial["params"])
            mlflow.set_tags({"flywheel.candidate": study["candidate"],
                             "flywheel.trial_state": trial["state"]})
            mlflow.log_metrics({f"valid_{study['metric']}": trial["value"],
                                "compute_rows": float(trial["rows"])})


def _parent_experiment() -> str:
    """The active run's experiment: a nested run otherwise goes to the process's current
    experiment (MLflow's default one here), not its parent's, and nobody would see it."""
    import mlflow

    active = mlflow.active_run()
    assert active is not None, "called inside the version's training run"
    return str(active.info.experiment_id)
