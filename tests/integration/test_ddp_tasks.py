"""DDP for every task: two gloo ranks under torchrun train the multiclass and the regression
heads (the task travels in the job file) and land where one process does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from flywheel.data.task import Task
from flywheel.training.candidates import valid_metrics
from flywheel.training.distributed import fit_distributed
from flywheel.training.mlp import fit_mlp
from tests.unit.test_training import mlp_params


def three_classes() -> tuple[np.ndarray, ...]:
    X, y = make_classification(n_samples=800, n_features=8, n_informative=5, n_classes=3,
                               class_sep=1.5, random_state=2)
    return X[:600], y[:600], X[600:], y[600:]


def amounts() -> tuple[np.ndarray, ...]:
    X, y = make_regression(n_samples=800, n_features=8, n_informative=5, noise=5.0,
                           random_state=2)
    return X[:600], 500.0 + 40.0 * y[:600], X[600:], 500.0 + 40.0 * y[600:]


@pytest.mark.parametrize(
    ("task", "data", "metric", "tolerance"),
    [
        (Task("multiclass", ("a", "b", "c")), three_classes, "macro_f1", 0.05),
        (Task("regression"), amounts, "r2", 0.05),
    ],
)
def test_two_ranks_train_the_task_head_like_one_process(
    task: Task, data, metric: str, tolerance: float, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    X_train, y_train, X_valid, y_valid = data()
    params = mlp_params(max_epochs=10, batch_size=64)
    one = fit_mlp(params, 0, X_train, y_train, X_valid, y_valid, tmp_path / "one", task=task)
    two = fit_distributed(params.model_copy(update={"nproc": 2}), 0, X_train, y_train,
                          X_valid, y_valid, tmp_path / "two", task=task)
    assert two is not None and two.details["nproc"] == 2
    answer = "predict_proba" if task.is_classification else "predict"
    scores = [valid_metrics(y_valid, getattr(fit.estimator, answer)(X_valid), task)[metric]
              for fit in (one, two)]
    assert scores[1] == pytest.approx(scores[0], abs=tolerance)
    assert scores[1] > 0.7  # the regression head is back on the target's scale
