"""The runs-table view every experiment of the project carries, as MLflow experiment tags.

`flywheel ui` links to it (`registry/ui.py` says why MLflow needs it); the store tags each
experiment it creates, and older ones on their next run.
"""

from __future__ import annotations

import json

VIEW_KEY = "flywheel-runs"
METRIC_COLUMNS = ("test_roc_auc", "test_pr_auc", "test_brier", "valid_roc_auc")


def _column(kind: str, name: str) -> str:
    return f"{kind}.`{name}`"  # the UI's canonical column key


RUNS_VIEW = {
    "selectedColumns": [_column("attributes", "Source"), _column("attributes", "Models")]
    + [_column("metrics", name) for name in METRIC_COLUMNS],
}
# Tags every experiment of the project carries (added to older experiments on their next run).
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(RUNS_VIEW),
}
