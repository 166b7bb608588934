"""The candidate search with real fits: rungs, who goes on, the limits, and what each got
(training/rungs.py), and the concurrency seam it runs its fits through (training/executor.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flywheel.config import HalvingParams, HGBParams, LogRegParams, MLPParams, TrainParams
from flywheel.training.candidates import Matrices, train_candidates
from flywheel.training.executor import map_fits
from flywheel.training.rungs import ALL_ROWS, search_candidates


@pytest.fixture(scope="module")
def xor() -> tuple[dict[str, Matrices], np.ndarray, np.ndarray]:
    """3,000 training rows where the class is the sign of x0 * x1: trees learn it, a linear
    model cannot (a valid ROC-AUC near 0.5)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (4000, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    data = Matrices(X[:3000], X[3000:])
    return dict.fromkeys(("one_hot", "native"), data), y[:3000], y[3000:]


def params(**changes: object) -> TrainParams:
    values: dict[str, object] = dict(
        candidates=["logreg", "hgb"], seed=0, selection_metric="roc_auc",
        logreg=LogRegParams(C=1.0, max_iter=200),
        hgb=HGBParams(learning_rate=0.1, max_iter=30, max_leaf_nodes=8, l2_regularization=1.0,
                      n_iter_no_change=5),
        mlp=MLPParams(hidden_sizes=[8], dropout=0.0, lr=0.01, weight_decay=0.0, batch_size=64,
                      max_epochs=2, patience=1, device="cpu"),
        workers=1, halving=HalvingParams(min_rows=300, factor=3, margin=0.0),
    )
    return TrainParams(**{**values, **changes})


def test_the_loser_stops_on_the_first_rung_and_the_winner_fits_every_row(xor, tmp_path) -> None:
    inputs, y_train, y_valid = xor
    searched = search_candidates(params(), inputs, y_train, y_valid, tmp_path)
    logreg, hgb = searched.results
    # rungs of 300, 900 and all 3,000 rows (2,700 is over half of them); ceil(2 / 3) = 1 goes
    # on after each
    assert logreg.compute["rows"] == 300 and logreg.compute["rung"] == 0
    assert logreg.compute["stopped"].startswith("halved at rung 0 (300 rows): roc_auc")
    assert logreg.compute["stopped"].endswith("(hgb)")  # the rung's leader, named
    assert hgb.compute | {"seconds": 0, "fits": []} == {
        "rows": 3000, "rung": 2, "rungs": 3, "seconds": 0, "fits": [], "stopped": ALL_ROWS}
    assert hgb.compute["seconds"] > 0
    assert hgb.compute["seconds"] == pytest.approx(sum(hgb.compute["fits"]), abs=0.03)
    assert len(hgb.compute["fits"]) == 3 and len(logreg.compute["fits"]) == 1
    assert searched.finalists == [hgb]
    assert hgb.valid_metrics["roc_auc"] > 0.9 > 0.6 > logreg.valid_metrics["roc_auc"]


def test_a_candidate_within_the_margin_goes_on(xor, tmp_path) -> None:
    inputs, y_train, y_valid = xor
    wide = params(halving=HalvingParams(min_rows=300, factor=3, margin=1.0, max_cost_ratio=None))
    searched = search_candidates(wide, inputs, y_train, y_valid, tmp_path)
    assert [r.compute["rows"] for r in searched.results] == [3000, 3000]
    assert len(searched.finalists) == 2


def test_a_candidate_the_margin_alone_keeps_stops_when_it_costs_past_the_ratio(
        xor, tmp_path) -> None:
    inputs, y_train, y_valid = xor
    # margin 1.0 keeps logreg, but any fit costs more than 1e-9 times hgb's (the leader's)
    dear = params(halving=HalvingParams(min_rows=300, factor=3, margin=1.0, max_cost_ratio=1e-9))
    searched = search_candidates(dear, inputs, y_train, y_valid, tmp_path)
    logreg, hgb = searched.results
    assert logreg.compute["rung"] == 0 and hgb.compute["rows"] == 3000
    assert logreg.compute["stopped"].startswith("max_cost_ratio at rung 0 (300 rows): within "
                                                "margin (roc_auc 0.")
    assert ", hgb) but its fit on 900 rows is forecast at" in logreg.compute["stopped"]
    assert "x hgb's" in logreg.compute["stopped"]
    assert searched.finalists == [hgb]


def test_a_fit_forecast_past_max_candidate_s_stops_and_selection_stays_on_equal_rows(
        xor, tmp_path) -> None:
    inputs, y_train, y_valid = xor
    searched = search_candidates(params(max_candidate_s=1e-6), inputs, y_train, y_valid,
                                 tmp_path)
    logreg, hgb = searched.results
    assert hgb.compute["rows"] == 300
    assert hgb.compute["stopped"].startswith("max_candidate_s: its fit on 900 rows")
    # both stopped on the first rung: both are finalists, judged on the same 300 rows
    assert searched.finalists == [logreg, hgb]


def test_a_rung_forecast_past_the_budget_is_not_started(xor, tmp_path) -> None:
    inputs, y_train, y_valid = xor
    searched = search_candidates(params(budget_s=1e-6), inputs, y_train, y_valid, tmp_path)
    hgb = searched.results[1]
    assert hgb.compute["rung"] == 0
    assert hgb.compute["stopped"].startswith("budget_s: rung 1 (900 rows)")


def test_one_rung_of_every_row_trains_as_a_plain_fit_on_two_workers(xor, tmp_path) -> None:
    inputs, y_train, y_valid = xor
    whole = params(workers=2, halving=HalvingParams(min_rows=3000))  # rungs: [3000]
    searched = search_candidates(whole, inputs, y_train, y_valid, tmp_path)
    plain = train_candidates(params(), inputs, y_train, y_valid, tmp_path)
    assert [r.valid_metrics for r in searched.results] == [r.valid_metrics for r in plain]
    assert [r.compute["stopped"] for r in searched.results] == [ALL_ROWS, ALL_ROWS]


def test_map_fits_answers_every_job_in_order_with_its_error() -> None:
    outcomes = map_fits(math.sqrt, [4.0, -1.0, 9.0], workers=2)
    assert [o.value for o in outcomes] == [2.0, None, 3.0]
    assert outcomes[1].error == "ValueError: math domain error"
    assert isinstance(outcomes[1].raised, ValueError)
    assert all(o.seconds >= 0 for o in outcomes)
