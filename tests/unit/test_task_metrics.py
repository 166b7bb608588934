"""Multiclass and regression metrics, their priors, bootstrap draws and floors, pinned by hand.

Every number below is worked out in the comments from four rows, so a changed formula (a
different average, clipping, F1 convention or centring) fails here, not in production.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

from flywheel.config import BootstrapParams
from flywheel.data.infer import inferred_floors
from flywheel.data.task import Task
from flywheel.errors import DataError
from flywheel.evaluation.bootstrap import resample_weights, scorer
from flywheel.evaluation.metrics import (
    multiclass_metrics,
    per_class_table,
    regression_metrics,
    task_metrics,
)
from flywheel.registry.gate import prior_metrics

PENGUINS = Task("multiclass", ("Adelie", "Chinstrap", "Gentoo"))
REGRESSION = Task("regression")
# rows: true class, probabilities; predicted (argmax) 0, 1, 1, 2
Y3 = np.array([0, 0, 1, 2])
P3 = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
Y = np.array([1.0, 2.0, 3.0, 4.0])
V = np.array([1.0, 3.0, 2.0, 4.0])  # errors 0, +1, -1, 0


def test_multiclass_metrics_by_hand() -> None:
    got = multiclass_metrics(Y3, P3)
    assert got["accuracy"] == pytest.approx(3 / 4)
    # class 0: TP 1, FN 1 -> F1 2/3; class 1: TP 1, FP 1 -> 2/3; class 2: TP 1 -> 1
    assert got["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert got["log_loss"] == pytest.approx(-np.log([0.7, 0.2, 0.6, 0.6]).mean())
    # squared distance to the one-hot row: .14, .98, .26, .24
    assert got["brier"] == pytest.approx((0.14 + 0.98 + 0.26 + 0.24) / 4)
    # one-vs-rest: class 0 wins 3 of 4 pairs and ties one (.875); classes 1 and 2 rank perfectly
    assert got["roc_auc"] == pytest.approx((0.875 + 1 + 1) / 3)


def test_per_class_table_by_hand() -> None:
    rows = per_class_table(Y3, P3, PENGUINS.classes)
    assert [r["class"] for r in rows] == ["Adelie", "Chinstrap", "Gentoo"]
    assert [(r["precision"], r["recall"], r["support"]) for r in rows] == [
        (1.0, 0.5, 2),
        (0.5, 1.0, 1),
        (1.0, 1.0, 1),
    ]


def test_multiclass_roc_auc_needs_every_class() -> None:
    with pytest.raises(DataError, match="2 of 3 classes"):
        multiclass_metrics(np.array([0, 0, 1, 1]), P3)


def test_regression_metrics_by_hand() -> None:
    got = task_metrics("regression", Y, V, 0.5)
    assert got["rmse"] == pytest.approx(np.sqrt(0.5))  # squared errors 0, 1, 1, 0
    assert got["mae"] == pytest.approx(0.5)
    assert got["r2"] == pytest.approx(1 - 2 / 5)  # SST around 2.5: 2.25 + .25 + .25 + 2.25


def test_regression_refuses_misaligned_or_missing_values() -> None:
    with pytest.raises(DataError, match="3 values for 4 targets"):
        regression_metrics(Y, V[:3])
    with pytest.raises(DataError, match="finite"):
        regression_metrics(Y, np.array([1.0, np.nan, 2.0, 3.0]))


def test_priors_by_hand() -> None:
    """Multiclass: always the training frequencies (majority class 0); regression: the mean."""
    prior = prior_metrics(Y3, np.array([0.5, 0.25, 0.25]), PENGUINS)
    assert prior["accuracy"] == pytest.approx(0.5)
    assert prior["macro_f1"] == pytest.approx((2 / 3) / 3)  # class 0: TP 2, FP 2; others 0
    assert prior["log_loss"] == pytest.approx(-(2 * np.log(0.5) + 2 * np.log(0.25)) / 4)
    assert prior["roc_auc"] == 0.5
    mean = prior_metrics(Y, 2.0, REGRESSION)  # errors 1, 0, -1, -2
    assert mean["rmse"] == pytest.approx(np.sqrt(6 / 4))
    assert mean["mae"] == pytest.approx(1.0)
    assert mean["r2"] == pytest.approx(1 - 6 / 5)


def test_inferred_floors_per_task() -> None:
    assert inferred_floors("binary", pd.Series(["a", "b"])) == {"roc_auc": 0.6}
    assert inferred_floors("regression", pd.Series([1.0, 2.0])) == {"r2": 0.05}
    shares = pd.Series(["A"] * 5 + ["B"] * 3 + ["C"] * 2)
    # majority share .5 of 3 classes: macro-F1 2(.5) / (1.5 * 3) = .2222, plus .05
    assert inferred_floors("multiclass", shares) == {"macro_f1": 0.272}


@pytest.mark.parametrize(
    ("kind", "metric", "reference"),
    [
        (
            "multiclass",
            "macro_f1",
            lambda y, p: f1_score(
                y, p.argmax(1), average="macro", labels=[0, 1, 2], zero_division=0
            ),
        ),
        ("multiclass", "accuracy", lambda y, p: np.mean(p.argmax(1) == y)),
        ("multiclass", "log_loss", lambda y, p: log_loss(y, p, labels=[0, 1, 2])),
        ("multiclass", "roc_auc", lambda y, p: roc_auc_score(y, p, multi_class="ovr")),
        ("multiclass", "brier", lambda y, p: np.mean(np.sum((p - np.eye(3)[y]) ** 2, axis=1))),
        ("regression", "rmse", lambda y, v: np.sqrt(np.mean((v - y) ** 2))),
        ("regression", "mae", mean_absolute_error),
        ("regression", "r2", r2_score),
    ],
)
def test_weighted_scorers_equal_the_metric_on_the_drawn_rows(kind, metric, reference) -> None:  # type: ignore[no-untyped-def]
    """A resample's weighted metric is the metric of the rows it drew, repeats included."""
    rng = np.random.default_rng(1)
    n = 90
    if kind == "multiclass":
        y = np.arange(n) % 3
        scores = rng.dirichlet([1, 1, 1], n) * 0.5 + 0.5 * np.eye(3)[y] * rng.random((n, 1))
        scores /= scores.sum(axis=1, keepdims=True)
    else:
        y = rng.normal(size=n)
        scores = y + rng.normal(size=n)
    params = BootstrapParams(resamples=100, seed=5, confidence=0.95)
    weights = next(resample_weights(n, params.resamples, params.seed))
    values = scorer(kind, metric, y, scores)(weights)
    for b in (0, 41, 99):
        drawn = np.repeat(np.arange(n), weights[b].astype(int))
        assert values[b] == pytest.approx(reference(y[drawn], scores[drawn]), abs=1e-10)
