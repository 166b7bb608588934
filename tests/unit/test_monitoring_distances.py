"""Drift distances pinned by hand-computed numbers (and scipy where it has one); the alarm
levels and the decision rule are in test_monitoring_drift_rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from flywheel.data.task import Task
from flywheel.monitoring.distances import (
    js_distance,
    psi,
    quantile_grid,
    shares,
    wasserstein_normalized,
)
from flywheel.monitoring.live import breaches, live_metrics
from flywheel.monitoring.profile import categorical_counts, numeric_counts, numeric_profile

BINARY = Task("binary", ("0", "1"))


def test_psi_by_hand() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.173287 + 0.101366
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(0.274653, abs=1e-6)
    assert psi(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == 0.0
    # An empty bin is clipped to 1e-4, so PSI stays finite: (0.5 - 1e-4) ln(0.5 / 1e-4) + ...
    empty = psi(np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5]))
    expected = 2 * (-0.25 * math.log(0.5)) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert empty == pytest.approx(expected)


def test_js_distance_by_hand_and_against_scipy() -> None:
    from scipy.spatial.distance import jensenshannon

    # m = [0.75, 0.25]; KL(p||m) = 0.5 log2(2/3) + 0.5 log2(2) = 0.207519; KL(q||m) = log2(4/3)
    # = 0.415037; distance = sqrt((0.207519 + 0.415037) / 2) = 0.557923
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    assert js_distance(p, q) == pytest.approx(0.557923, abs=1e-6)
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert js_distance(p, p) == 0.0
    rng = np.random.default_rng(0)
    a, b = shares(rng.random(12)), shares(rng.random(12))
    assert js_distance(a, b) == pytest.approx(jensenshannon(a, b, base=2))


def test_wasserstein_is_the_shift_in_reference_deviations() -> None:
    from scipy.stats import wasserstein_distance

    assert wasserstein_normalized(np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4]), 2.0) == 0.5
    assert wasserstein_normalized(np.array([5.0, 5.0]), np.array([6.0, 8.0]), 0.0) == 2.0
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(0, 2, 20_000), rng.normal(0.5, 3, 20_000)
    grid = quantile_grid(100)
    ours = wasserstein_normalized(np.quantile(ref, grid), np.quantile(cur, grid), ref.std())
    assert ours == pytest.approx(wasserstein_distance(ref, cur) / ref.std(), rel=0.03)


def test_binning_numeric_and_categorical() -> None:
    values = np.array([0.5, 1.0, 1.5, 2.0, 3.0, np.nan])
    # bins (-inf, 1], (1, 2], (2, inf), then missing
    assert numeric_counts([1.0, 2.0], values).tolist() == [2, 2, 1, 1]
    column = pa.array(["a", "a", "b", "c", None])
    # known a, b; then unseen (c); then missing
    assert categorical_counts(["a", "b"], column).tolist() == [2, 1, 1, 1]
    profile = numeric_profile(np.array([1.0, 1.0, 1.0, 2.0, np.nan]), bins=4)
    assert profile["edges"] == [1.0, 1.25]  # quantiles 1, 1, 1.25, deduplicated
    assert profile["missing_rate"] == 0.2 and sum(profile["shares"]) == pytest.approx(1.0)


def test_numeric_counts_agree_with_a_binary_search_per_row() -> None:
    """The edge-count binning is the searchsorted definition, ties on edges and NaN included."""
    rng = np.random.default_rng(3)
    edges = [-1.0, 0.0, 0.5, 2.0]
    values = np.concatenate([rng.normal(size=5000), edges, [np.nan] * 7, [-np.inf, np.inf]])
    present = values[~np.isnan(values)]
    expected = np.bincount(np.searchsorted(edges, present, side="left"), minlength=5)
    assert numeric_counts(edges, values).tolist() == [*expected.tolist(), 7]
    assert numeric_counts([], values).tolist() == [present.size, 7]


def test_live_metrics_by_hand_and_decay_floors() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = live_metrics(BINARY, y, p)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    # ranked: 0.8 (pos), 0.4, 0.35 (pos), 0.1: AP = 0.5 * 1 + 0.5 * 2/3
    assert metrics["pr_auc"] == pytest.approx(0.833333, abs=1e-6)
    assert metrics["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert metrics["positive_rate"] == 0.5 and metrics["labelled_rows"] == 4
    floors = {"roc_auc": 0.8, "pr_auc": 0.5, "brier": 0.15}
    assert breaches(metrics, floors) == ["roc_auc", "brier"]
    assert live_metrics(BINARY, np.array([1, 1]), np.array([0.9, 0.8]))["roc_auc"] is None
    assert breaches({"roc_auc": None}, floors) == []


def test_live_metrics_of_multiclass_and_regression_by_hand() -> None:
    y = np.array(["a", "a", "b", "c", "c", "c"], dtype=object)
    predicted = np.array(["a", "b", "b", "c", "c", "a"], dtype=object)
    metrics = live_metrics(Task("multiclass", ("a", "b", "c")), y, predicted)
    # F1 per class: a: p 1/2, r 1/2 -> 1/2; b: p 1/2, r 1 -> 2/3; c: p 1, r 2/3 -> 4/5
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 3)
    assert metrics["accuracy"] == pytest.approx(4 / 6) and metrics["labelled_rows"] == 6
    assert "positive_rate" not in metrics and "roc_auc" not in metrics
    assert breaches(metrics, {"macro_f1": 0.7, "accuracy": 0.6}) == ["macro_f1"]
    values = live_metrics(Task("regression"), np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 1.0]))
    assert values["rmse"] == pytest.approx(np.sqrt((1 + 0 + 9) / 3))
    assert values["mae"] == pytest.approx(4 / 3)
    assert breaches(values, {"rmse": 1.5, "mae": 2.0}) == ["rmse"]  # lower is better: ceilings
    assert live_metrics(Task("regression"), np.array([]), np.array([]))["rmse"] is None


def test_categorical_counts_take_pandas_values() -> None:
    counts = categorical_counts(["x"], pd.Series(["x", "y", None], dtype="str"))
    assert counts.tolist() == [1, 1, 1]
