"""The successive-halving rule, by hand (training/halving.py)."""

from __future__ import annotations

import pytest

from flywheel.training.halving import (
    forecast_seconds,
    over_limit,
    rung_fits_budget,
    rung_rows,
    survivors,
)


def test_rungs_grow_by_the_factor_and_end_on_every_row() -> None:
    assert rung_rows(100_000, 5_000, 3) == [5_000, 15_000, 45_000, 100_000]
    assert rung_rows(45_000, 5_000, 3) == [5_000, 15_000, 45_000]  # no rung twice
    # 150,000 is over half of 152,808: the full fit follows 50,000 directly
    assert rung_rows(152_808, 50_000, 3) == [50_000, 152_808]
    assert rung_rows(100_000, 50_000, 3) == [50_000, 100_000]  # exactly half stays a rung
    assert rung_rows(90_000, 50_000, 3) == [90_000]  # over half: one rung of all rows


def test_a_table_smaller_than_the_first_rung_is_one_rung_of_all_rows() -> None:
    assert rung_rows(4_000, 5_000, 3) == [4_000]


def test_the_best_third_goes_on_and_keeps_the_order_given() -> None:
    scores = {"logreg": 0.70, "hgb": 0.80, "mlp": 0.75}
    # ceil(3 / 3) = 1: only hgb; mlp is 0.05 behind, past the margin 0.01
    assert survivors(scores, factor=3, margin=0.01, lower_is_better=False) == ["hgb"]
    # factor 2: ceil(3 / 2) = 2 go on, listed in params' order
    assert survivors(scores, factor=2, margin=0.0, lower_is_better=False) == ["hgb", "mlp"]


def test_a_candidate_within_the_margin_can_still_win_and_goes_on() -> None:
    scores = {"logreg": 0.796, "hgb": 0.800, "mlp": 0.750}
    # logreg is 0.004 behind the best: within 0.005
    assert survivors(scores, factor=3, margin=0.005, lower_is_better=False) == ["logreg", "hgb"]


def test_for_a_loss_the_lowest_is_best() -> None:
    scores = {"logreg": 0.40, "hgb": 0.30, "mlp": 0.31}
    assert survivors(scores, factor=3, margin=0.0, lower_is_better=True) == ["hgb"]
    assert survivors(scores, factor=3, margin=0.015, lower_is_better=True) == ["hgb", "mlp"]


def test_a_tie_keeps_the_candidate_listed_first() -> None:
    scores = {"logreg": 0.8, "hgb": 0.8, "mlp": 0.7}
    assert survivors(scores, factor=3, margin=0.0, lower_is_better=False) == ["logreg", "hgb"]
    assert survivors({"a": 0.8, "b": 0.8, "c": 0.8, "d": 0.1}, factor=4, margin=0.0,
                     lower_is_better=False) == ["a", "b", "c"]


def test_forecast_scales_with_rows() -> None:
    assert forecast_seconds(2.0, 5_000, 15_000) == pytest.approx(6.0)


def test_a_fit_forecast_past_the_limit_stops() -> None:
    forecasts = {"hgb": 6.0, "mlp": 30.0}
    assert over_limit(forecasts, 10.0) == ["mlp"]
    assert over_limit(forecasts, None) == []


def test_a_rung_is_as_long_as_its_longest_fit_or_its_share_of_the_total() -> None:
    # two workers: max(8, (8 + 4 + 4) / 2 = 8) = 8 s; 10 s spent; 18 <= 20 fits, 17 s does not
    assert rung_fits_budget([8.0, 4.0, 4.0], workers=2, spent_s=10.0, budget_s=20.0)
    assert not rung_fits_budget([8.0, 4.0, 4.0], workers=2, spent_s=10.0, budget_s=17.0)
    # one worker: 16 s of fits one after another
    assert not rung_fits_budget([8.0, 4.0, 4.0], workers=1, spent_s=0.0, budget_s=15.0)
    assert rung_fits_budget([8.0], workers=1, spent_s=1e9, budget_s=None)
