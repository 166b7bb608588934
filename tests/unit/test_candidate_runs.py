"""Each candidate's nested run lands under its parent, in the parent's experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.registry.candidate_runs import log_candidate_runs


def test_nested_candidate_runs_sit_in_their_parent_s_experiment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # set_tracking_uri exports it
    mlflow.set_tracking_uri(uri)
    candidates = tmp_path / "candidates.json"
    candidates.write_text(json.dumps([
        {"name": "logreg", "valid": {"roc_auc": 0.8}, "selected": True,
         "compute": {"rows": 100, "seconds": 1.5, "rung": 0, "stopped": "all rows"}},
        {"name": "mlp", "valid": {}, "selected": False, "compute": {"rows": 50, "seconds": 9.0,
                                                                       "rung": 0,
                                                                       "stopped": "budget"}},
    ]))
    experiment = mlflow.create_experiment("flywheel-x")
    with mlflow.start_run(experiment_id=experiment) as parent:
        log_candidate_runs(candidates)
    runs = mlflow.search_runs([experiment], output_format="list")
    nested = {r.info.run_name: r for r in runs if r.info.run_id != parent.info.run_id}
    assert set(nested) == {"candidate-logreg", "candidate-mlp"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in nested.values())
    assert nested["candidate-logreg"].data.metrics == {
        "valid_roc_auc": 0.8, "compute_rows": 100.0, "compute_seconds": 1.5, "compute_rung": 0.0}
    assert nested["candidate-mlp"].data.tags["flywheel.stopped"] == "budget"
