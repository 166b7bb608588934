"""Every formula behind the gate's champion checks, pinned by hand on numbers small enough to
check with a pencil (evaluation/bootstrap.py, evaluation/slices.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from flywheel.config import BootstrapParams
from flywheel.evaluation.bootstrap import (
    Judged,
    interval,
    p_value_above,
    paired_resamples,
    resample_weights,
    weighted_brier,
    weighted_log_loss,
)
from flywheel.evaluation.slices import holm, judged_slices

Y = np.array([0, 1, 1, 0])
P = np.array([0.1, 0.8, 0.4, 0.5])


def test_brier_by_hand_and_under_weights() -> None:
    # (0.1-0)^2 + (0.8-1)^2 + (0.4-1)^2 + (0.5-0)^2 = 0.01 + 0.04 + 0.36 + 0.25 = 0.66; / 4
    ones = np.ones((1, 4))
    assert weighted_brier(Y, P, ones)[0] == pytest.approx(0.165, abs=1e-15)
    # Row 3 drawn twice, row 1 never: (2 * 0.36 + 0.04 + 0.25) / 4 = 1.01 / 4
    assert weighted_brier(Y, P, np.array([[0.0, 1, 2, 1]]))[0] == pytest.approx(0.2525)
    assert weighted_brier(Y, P, ones)[0] == pytest.approx(brier_score_loss(Y, P))


def test_log_loss_by_hand() -> None:
    # -(ln 0.9 + ln 0.8 + ln 0.4 + ln 0.5) / 4 = (0.10536 + 0.22314 + 0.91629 + 0.69315) / 4
    expected = -(np.log(0.9) + np.log(0.8) + np.log(0.4) + np.log(0.5)) / 4
    assert weighted_log_loss(Y, P, np.ones((1, 4)))[0] == pytest.approx(expected, abs=1e-15)
    assert expected == pytest.approx(0.48449, abs=1e-5)
    assert expected == pytest.approx(log_loss(Y, P))


def test_percentile_interval_is_numpys_linear_quantile() -> None:
    draws = np.arange(1.0, 101.0)  # 1..100: the 2.5% quantile sits at 0.025 * 99 = 2.475
    low, high, used = interval(draws, 0.95)
    assert low == pytest.approx(1 + 2.475)  # 3.475
    assert high == pytest.approx(1 + 0.975 * 99)  # 97.525
    assert used == 100
    low, _, used = interval(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5)  # NaN draws left out
    assert (low, used) == (1.5, 3)


def test_one_sided_bootstrap_p_value_by_hand() -> None:
    draws = np.array([0.01, 0.02, 0.03, 0.04, np.nan])
    # "true value <= 0.025": 2 of 4 draws at or below it, so (1 + 2) / (1 + 4)
    assert p_value_above(draws, 0.025) == pytest.approx(0.6)
    assert p_value_above(draws, 0.0) == pytest.approx(0.2)  # never below 1 / (B + 1)
    assert p_value_above(draws, 1.0) == pytest.approx(1.0)


def test_holm_adjusted_p_values_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04
    # running maximum: 0.02, 0.03, 0.06, 0.06; back in the input order:
    adjusted = holm(np.array([0.01, 0.04, 0.03, 0.005]))
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm(np.array([0.6, 0.5])) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm(np.array([0.02])) == pytest.approx([0.02])  # one slice: no correction


def test_slices_need_enough_positives_and_negatives() -> None:
    frame = pd.DataFrame({"c": ["a"] * 6 + ["b"] * 4 + [None] * 2})
    y = np.array([1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 0])
    groups, skipped = judged_slices(frame, y, ["c"], min_pos=2, min_neg=2)
    assert list(groups) == ["c=a"]  # b has 1 negative, (missing) 1 of each
    assert groups["c=a"].tolist() == [True] * 6 + [False] * 6
    assert skipped == [
        {"slice": "c=(missing)", "positives": 1, "negatives": 1},
        {"slice": "c=b", "positives": 3, "negatives": 1},
    ]


def test_paired_resamples_share_one_stream_of_weights() -> None:
    """Each draw of the gain, the loss and every slice's drop is the metric on the rows that
    the same resample drew: checked against scikit-learn row by row."""
    rng = np.random.default_rng(0)
    n = 60
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    cand, champ = rng.random(n), rng.random(n)
    half = np.arange(n) % 2 == 0
    params = BootstrapParams(resamples=100, seed=3, confidence=0.95)
    judged = Judged("binary", "roc_auc", "brier")
    got = paired_resamples(y, cand, champ, judged, {"even": half}, params)
    weights = next(resample_weights(n, params.resamples, params.seed))
    for b in (0, 7, 99):
        drawn = np.repeat(np.arange(n), weights[b].astype(int))
        gain = roc_auc_score(y[drawn], cand[drawn]) - roc_auc_score(y[drawn], champ[drawn])
        assert got.gain[b] == pytest.approx(gain, abs=1e-12)
        loss = brier_score_loss(y[drawn], cand[drawn]) - brier_score_loss(y[drawn], champ[drawn])
        assert got.loss[b] == pytest.approx(loss, abs=1e-12)
        even = drawn[half[drawn]]
        drop = roc_auc_score(y[even], champ[even]) - roc_auc_score(y[even], cand[even])
        assert got.drops["even"][b] == pytest.approx(drop, abs=1e-12)
    assert got.observed_gain == pytest.approx(roc_auc_score(y, cand) - roc_auc_score(y, champ))
