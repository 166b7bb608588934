"""The gate per task: floors and ceilings by direction, each task's prior baseline, and the
champion comparison on the task's metric (lower is better for rmse), from numbers alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flywheel.config import load_params
from flywheel.data.task import Task
from flywheel.registry.compare import compare
from flywheel.registry.gate import judge

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
PARAMS = PARAMS.model_copy(
    update={"evaluate": PARAMS.evaluate.model_copy(update={"slices": ["contract"]})}
)
SPECIES = Task("multiclass", ("Adelie", "Chinstrap", "Gentoo"))
REGRESSION = Task("regression")
MC_PRIOR = {"macro_f1": 0.2, "log_loss": 1.05, "accuracy": 0.44, "roc_auc": 0.5, "brier": 0.64}
MC_GOOD = {"macro_f1": 0.9, "log_loss": 0.3, "accuracy": 0.9, "roc_auc": 0.97, "brier": 0.15}
RG_PRIOR = {"rmse": 10.0, "mae": 8.0, "r2": -0.01}


def first(task: Task, metrics: dict, prior: dict, floors: dict | None = None):  # type: ignore[no-untyped-def]
    return judge(
        params=PARAMS.promote,
        load_error=None,
        metrics=metrics,
        floors=floors or {},
        prior=prior,
        champion_metrics=None,
        task=task,
    )


def test_a_multiclass_model_must_beat_the_majority_class_and_the_frequencies() -> None:
    assert first(SPECIES, MC_GOOD, MC_PRIOR).promote
    # 0.2 + min_macro_f1_gain 0.1 = 0.3 required
    low_f1 = first(SPECIES, MC_GOOD | {"macro_f1": 0.29}, MC_PRIOR)
    assert not low_f1.promote
    assert "baseline.macro_f1" in low_f1.reason and "0.3000 required" in low_f1.reason
    # 1.05 * (1 - 0.05) = 0.9975 at most
    no_skill = first(SPECIES, MC_GOOD | {"log_loss": 1.0}, MC_PRIOR)
    assert [c.name for c in no_skill.checks if not c.passed] == ["baseline.log_loss"]


def test_a_regressor_must_beat_the_training_mean_and_rmse_floors_are_ceilings() -> None:
    assert first(REGRESSION, {"rmse": 9.4, "mae": 7.0, "r2": 0.1}, RG_PRIOR).promote
    barely = first(REGRESSION, {"rmse": 9.6, "mae": 7.0, "r2": 0.07}, RG_PRIOR)  # 9.5 at most
    assert [c.name for c in barely.checks if not c.passed] == ["baseline.rmse"]
    ceiling = first(REGRESSION, {"rmse": 5.0, "mae": 4.0, "r2": 0.7}, RG_PRIOR, {"rmse": 4.5})
    assert not ceiling.promote and "rmse 5.0000 <= 4.5 required" in ceiling.reason
    floor = first(REGRESSION, {"rmse": 5.0, "mae": 4.0, "r2": 0.7}, RG_PRIOR, {"r2": 0.8})
    assert not floor.promote and "r2 0.7000 >= 0.8 required" in floor.reason


def _against(task: Task, y: np.ndarray, candidate: np.ndarray, champion: np.ndarray):  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({"contract": np.where(np.arange(y.size) % 2, "a", "b")})
    comparison = compare(PARAMS, frame, y, candidate, champion, task)
    verdict = judge(
        params=PARAMS.promote,
        load_error=None,
        metrics={"rmse": 1.0, "mae": 1.0, "r2": 0.5},
        floors={},
        prior={"rmse": 2.0, "mae": 2.0, "r2": 0.0},
        champion_metrics={"rmse": 1.0},
        task=task,
        comparison=comparison,
    )
    return comparison, verdict


def test_a_regressor_with_smaller_errors_wins_on_rmse_and_has_no_calibration_check() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=600)
    good, poor = y + 0.3 * rng.normal(size=600), y + 0.6 * rng.normal(size=600)
    comparison, verdict = _against(REGRESSION, y, good, poor)
    assert comparison["gain"]["metric"] == "rmse"  # params' roc_auc means nothing here
    assert comparison["gain"]["delta"] > 0.2  # champion's rmse - candidate's: about 0.67 - 0.3
    assert comparison["calibration"] is None
    assert verdict.promote, verdict.reason
    assert "no calibration check" in next(
        c.detail for c in verdict.checks if c.name == "calibration"
    )
    comparison, verdict = _against(REGRESSION, y, poor, good)
    assert comparison["gain"]["delta"] < -0.2
    assert not verdict.promote and "min_delta" in verdict.reason
    assert [s["slice"] for s in comparison["slices"]] == ["contract=a", "contract=b"]
    assert all(s["veto"] for s in comparison["slices"])  # each half is worse by ~0.37
