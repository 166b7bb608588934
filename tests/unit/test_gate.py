"""The promotion gate decides from numbers alone: every rule can fail on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import load_params
from flywheel.registry.gate import judge

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml").promote
GOOD = {"roc_auc": 0.85, "pr_auc": 0.65, "brier": 0.14, "log_loss": 0.42}


def verdict(**kwargs):  # type: ignore[no-untyped-def]
    args = {
        "params": PARAMS,
        "load_error": None,
        "metrics": GOOD,
        "champion_metrics": None,
        "bootstrap": None,
        "slice_drops": [],
    } | kwargs
    return judge(**args)


def test_first_model_passing_floors_is_promoted() -> None:
    result = verdict()
    assert result.promote
    assert "no champion yet" in result.reason


def test_model_that_does_not_load_is_rejected_before_anything_else() -> None:
    result = verdict(load_error="ModuleNotFoundError: notebook_class")
    assert not result.promote
    assert [c.name for c in result.checks] == ["loads"]
    assert "notebook_class" in result.reason


@pytest.mark.parametrize(("metric", "value"), [("roc_auc", 0.6), ("brier", 0.3)])
def test_absolute_thresholds_are_floors_and_ceilings(metric: str, value: float) -> None:
    result = verdict(metrics=GOOD | {metric: value})
    assert not result.promote
    assert f"threshold.{metric}" in result.reason


def test_must_beat_champion_by_min_delta_and_outside_noise() -> None:
    champion = GOOD | {"roc_auc": 0.84}
    clear = {"delta": 0.01, "ci_low": 0.002, "ci_high": 0.02, "resamples": 1000}
    assert verdict(champion_metrics=champion, bootstrap=clear).promote

    noisy = clear | {"ci_low": -0.003}
    result = verdict(champion_metrics=champion, bootstrap=noisy)
    assert not result.promote and "bootstrap" in result.reason

    tiny = verdict(champion_metrics=GOOD | {"roc_auc": 0.8495}, bootstrap=clear)
    assert not tiny.promote and "min_delta" in tiny.reason


def test_no_slice_may_fall_past_tolerance() -> None:
    champion = GOOD | {"roc_auc": 0.84}
    clear = {"delta": 0.01, "ci_low": 0.002, "ci_high": 0.02, "resamples": 1000}
    drops = [
        {"slice": "contract=Two year", "drop": 0.08},
        {"slice": "contract=One year", "drop": -0.01},
    ]
    result = verdict(champion_metrics=champion, bootstrap=clear, slice_drops=drops)
    assert not result.promote
    assert "contract=Two year" in result.reason
