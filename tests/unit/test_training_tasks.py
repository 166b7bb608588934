"""Candidates per task: multiclass and regression fits answer the estimator contract, learn,
are selected in the task's direction, and the torch heads checkpoint and pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from flywheel.data.task import Task
from flywheel.errors import DataError
from flywheel.training.candidates import (
    CandidateResult,
    select_best,
    selection_key,
    train_candidates,
    valid_metrics,
)
from flywheel.training.heads import Head, head_for
from flywheel.training.mlp import CHECKPOINT_NAME, fit_mlp, load_checkpoint
from tests.unit.test_training import mlp_params, same, train_params

MULTICLASS = Task("multiclass", ("a", "b", "c"))
REGRESSION = Task("regression")


@pytest.fixture(scope="module")
def three_classes() -> tuple[np.ndarray, ...]:
    X, y = make_classification(n_samples=600, n_features=10, n_informative=6, n_classes=3,
                               class_sep=1.5, random_state=0)
    return X[:400], y[:400], X[400:], y[400:]


@pytest.fixture(scope="module")
def amounts() -> tuple[np.ndarray, ...]:
    X, y = make_regression(n_samples=600, n_features=8, n_informative=5, noise=5.0,
                           random_state=0)
    y = 1000.0 + 50.0 * y  # far from the unit scale: the MLP must standardise it
    return X[:400], y[:400], X[400:], y[400:]


def result(name: str, **metrics: float) -> CandidateResult:
    return CandidateResult(name=name, estimator=None, valid_metrics=metrics, seconds=0.0)


# --- the metrics selection reads, by hand ---------------------------------------------------

def test_regression_valid_metrics_by_hand() -> None:
    metrics = valid_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]), REGRESSION)
    # errors 0, 0, 2: rmse sqrt(4/3), mae 2/3; r2 = 1 - 4 / 2 (spread about the mean 2 is 2)
    assert metrics == pytest.approx({"rmse": np.sqrt(4 / 3), "mae": 2 / 3, "r2": -1.0})


def test_multiclass_valid_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],
                      [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7]])
    metrics = valid_metrics(y, proba, MULTICLASS)
    # predicted 0 0 1 0 2 2: F1 class 0 = 2*2/(3+2) = 0.8, class 1 = 2*1/(1+2) = 2/3, class 2 = 1
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 1.0) / 3)
    assert metrics["accuracy"] == pytest.approx(5 / 6)
    expected_loss = -np.mean(np.log([0.8, 0.6, 0.7, 0.4, 0.8, 0.7]))
    assert metrics["log_loss"] == pytest.approx(expected_loss)


# --- selection ------------------------------------------------------------------------------

def test_selection_follows_the_task_and_its_direction() -> None:
    errors = [result("logreg", rmse=3.0, mae=2.0, r2=0.5), result("hgb", rmse=2.0, mae=2.5,
                                                                   r2=0.7)]
    assert selection_key("roc_auc", REGRESSION) == "rmse"  # params' default means nothing here
    assert select_best(errors, "roc_auc", REGRESSION).name == "hgb"  # lowest rmse
    assert select_best(errors, "mae", REGRESSION).name == "logreg"
    assert select_best(errors, "r2", REGRESSION).name == "hgb"  # highest r2
    scores = [result("logreg", macro_f1=0.9, accuracy=0.8, log_loss=0.5, roc_auc=0.9),
              result("mlp", macro_f1=0.8, accuracy=0.9, log_loss=0.4, roc_auc=0.95)]
    assert select_best(scores, "macro_f1", MULTICLASS).name == "logreg"
    assert select_best(scores, "neg_log_loss", MULTICLASS).name == "mlp"
    assert selection_key("pr_auc", MULTICLASS) == "macro_f1"


# --- every candidate per task ---------------------------------------------------------------

@pytest.mark.slow  # fits all three candidates twice, the torch MLP included
def test_every_candidate_learns_three_classes(three_classes, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = three_classes
    results = train_candidates(train_params(["logreg", "hgb", "mlp"]), same(X_train, X_valid),
                               y_train, y_valid, tmp_path, task=MULTICLASS)
    for r in results:
        proba = r.estimator.predict_proba(X_valid)
        assert proba.shape == (len(X_valid), 3)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        assert r.valid_metrics["macro_f1"] > 0.7, r
        assert r.valid_metrics == valid_metrics(y_valid, proba, MULTICLASS)


@pytest.mark.slow
def test_every_candidate_learns_numbers(amounts, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = amounts
    results = train_candidates(train_params(["logreg", "hgb", "mlp"]), same(X_train, X_valid),
                               y_train, y_valid, tmp_path, task=REGRESSION)
    assert [r.name for r in results] == ["logreg", "hgb", "mlp"]
    for r in results:
        predicted = r.estimator.predict(X_valid)
        assert predicted.shape == (len(X_valid),)
        assert r.valid_metrics["r2"] > 0.8, r
        assert not hasattr(r.estimator, "predict_proba") or r.name != "mlp"


def test_a_constant_regression_target_is_no_class_error(amounts, tmp_path: Path) -> None:
    X_train, _, X_valid, _ = amounts
    flat = np.full(len(X_train), 3.0)
    results = train_candidates(train_params(["logreg"]), same(X_train, X_valid), flat,
                               np.full(len(X_valid), 3.0), tmp_path, task=REGRESSION)
    np.testing.assert_allclose(results[0].estimator.predict(X_valid), 3.0, atol=1e-6)
    with pytest.raises(DataError, match="only one class"):
        train_candidates(train_params(["logreg"]), same(X_train, X_valid),
                         np.zeros(len(X_train), dtype=int), np.zeros(len(X_valid), dtype=int),
                         tmp_path, task=MULTICLASS)


# --- the torch heads ------------------------------------------------------------------------

def test_the_regression_head_standardises_with_the_train_rows() -> None:
    head = head_for(REGRESSION, np.array([10.0, 20.0, 30.0]))
    assert (head.kind, head.outputs) == ("regression", 1)
    assert head.target_mean == 20.0 and head.target_std == pytest.approx(np.sqrt(200 / 3))
    np.testing.assert_allclose(head.scaled(np.array([20.0])), [0.0])
    assert head_for(REGRESSION, np.array([5.0, 5.0])).target_std == 1.0  # no division by 0
    assert head_for(MULTICLASS, np.array([0, 1, 2])).outputs == 3
    assert head_for(None, np.array([0, 1])) == Head("binary")


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_a_head_checkpoints_reloads_and_pickles(kind, three_classes, amounts,
                                                tmp_path: Path) -> None:
    task, (X_train, y_train, X_valid, y_valid) = (
        (MULTICLASS, three_classes) if kind == "multiclass" else (REGRESSION, amounts))
    fit = fit_mlp(mlp_params(max_epochs=4), 0, X_train, y_train, X_valid, y_valid, tmp_path,
                  task=task)
    answer = "predict_proba" if kind == "multiclass" else "predict"
    expected = getattr(fit.estimator, answer)(X_valid)
    reloaded, checkpoint = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert checkpoint["head"]["kind"] == kind
    np.testing.assert_allclose(getattr(reloaded, answer)(X_valid), expected, rtol=1e-6)
    restored = pickle.loads(pickle.dumps(fit.estimator))
    np.testing.assert_allclose(getattr(restored, answer)(X_valid), expected, rtol=1e-6)
    if kind == "regression":  # back on the target's scale, not the standardised one
        assert abs(float(np.mean(expected)) - float(np.mean(y_valid))) < 0.5 * np.std(y_valid)
