"""The promotion gate decides from numbers alone: every rule can fail on its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.config import load_params
from flywheel.data.spec import load_spec
from flywheel.data.task import Task
from flywheel.registry.gate import judge, prior_metrics

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml").promote
FLOORS = dict(load_spec(REPO / "specs/wa_churn.yaml").floors)
GOOD = {"roc_auc": 0.85, "pr_auc": 0.65, "brier": 0.14, "log_loss": 0.42}
PRIOR = {"roc_auc": 0.5, "brier": 0.195, "log_loss": 0.58}  # 26.5% positives
BINARY = Task("binary", ("No", "Yes"))


def verdict(**kwargs):  # type: ignore[no-untyped-def]
    args = {
        "params": PARAMS,
        "load_error": None,
        "metrics": GOOD,
        "floors": FLOORS,
        "prior": PRIOR,
        "champion_metrics": None,
        "task": BINARY,
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


def test_prior_metrics_are_those_of_predicting_the_base_rate() -> None:
    y = np.array([1, 0, 0, 0])
    prior = prior_metrics(y, 0.25, BINARY)
    assert prior["roc_auc"] == 0.5
    assert prior["brier"] == pytest.approx((0.75**2 + 3 * 0.25**2) / 4)
    assert prior["log_loss"] == pytest.approx(-(np.log(0.25) + 3 * np.log(0.75)) / 4)


def test_a_table_without_floors_still_needs_a_model_better_than_the_prior() -> None:
    useful = {"roc_auc": 0.62, "pr_auc": 0.35, "brier": 0.18, "log_loss": 0.55}
    assert verdict(metrics=useful, floors={}).promote

    noise = useful | {"roc_auc": 0.53}
    result = verdict(metrics=noise, floors={})
    assert not result.promote and "baseline.roc_auc" in result.reason

    uncalibrated = useful | {"brier": 0.25}  # ranks, but its probabilities are worse than none
    result = verdict(metrics=uncalibrated, floors={})
    assert not result.promote and "baseline.brier" in result.reason
    assert "baseline.roc_auc" not in result.reason


def test_floors_are_the_datasets_own() -> None:
    modest = {"roc_auc": 0.70, "pr_auc": 0.45, "brier": 0.17, "log_loss": 0.5}
    assert not verdict(metrics=modest).promote  # the default table's floors: roc_auc 0.75
    assert verdict(metrics=modest, floors={"roc_auc": 0.6}).promote


def comparison(**parts):  # type: ignore[no-untyped-def]
    """Numbers as registry/compare.compare returns them: a clear, harmless gain by default."""
    base = {
        "rows": 1409,
        "gain": {
            "metric": "roc_auc",
            "delta": 0.01,
            "ci_low": 0.003,
            "ci_high": 0.02,
            "resamples": 1000,
        },
        "calibration": {"metric": "brier", "delta": -0.002, "ci_low": -0.006, "ci_high": 0.003},
        "slices": [],
        "skipped_slices": [],
    }
    return base | parts


def slice_record(name: str, p_holm: float, veto: bool) -> dict:
    return {
        "slice": name,
        "positives": 60,
        "negatives": 300,
        "drop": 0.08,
        "ci_low": 0.03,
        "ci_high": 0.13,
        "resamples": 1000,
        "p_value": p_holm / 3,
        "p_holm": p_holm,
        "veto": veto,
    }


CHAMPION = GOOD | {"roc_auc": 0.84}


def test_superiority_needs_the_lower_bound_of_the_gain_at_min_delta() -> None:
    clear = verdict(champion_metrics=CHAMPION, comparison=comparison())
    assert clear.promote, clear.reason
    assert "on 1409 test rows" in clear.reason

    noisy = comparison(gain=comparison()["gain"] | {"ci_low": -0.003})
    result = verdict(champion_metrics=CHAMPION, comparison=noisy)
    assert not result.promote and "min_delta" in result.reason

    below = comparison(gain=comparison()["gain"] | {"ci_low": PARAMS.min_delta / 2})
    assert not verdict(champion_metrics=CHAMPION, comparison=below).promote
    at = comparison(gain=comparison()["gain"] | {"ci_low": PARAMS.min_delta})
    assert verdict(champion_metrics=CHAMPION, comparison=at).promote

    twin = comparison(
        gain={"metric": "roc_auc", "delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "resamples": 1000}
    )
    zero = PARAMS.model_copy(update={"min_delta": 0.0})
    assert not verdict(params=zero, champion_metrics=CHAMPION, comparison=twin).promote


def test_worse_calibration_beyond_the_margin_vetoes_a_better_ranker() -> None:
    worse = comparison(
        calibration={"metric": "brier", "delta": 0.05, "ci_low": 0.04, "ci_high": 0.06}
    )
    result = verdict(champion_metrics=CHAMPION, comparison=worse)
    assert not result.promote
    assert result.reason.startswith("calibration: brier change +0.0500")


def test_a_slice_vetoes_only_when_its_holm_adjusted_drop_is_beyond_noise() -> None:
    drops = [
        slice_record("contract=Two year", 0.01, True),
        slice_record("contract=One year", 0.4, False),
    ]
    result = verdict(champion_metrics=CHAMPION, comparison=comparison(slices=drops))
    assert not result.promote
    assert "contract=Two year falls" in result.reason and "One year falls" not in result.reason

    noise = [slice_record("contract=Two year", 0.2, False)]
    assert verdict(champion_metrics=CHAMPION, comparison=comparison(slices=noise)).promote


def test_another_target_is_refused_before_any_comparison() -> None:
    from flywheel.registry.compare import target_identity, target_mismatch

    spec = load_spec(REPO / "specs/wa_churn.yaml")
    ours = target_identity(spec)
    flipped = target_identity(spec.model_copy(update={"positive_class": "No"}))
    assert target_mismatch(ours, target_identity(spec)) is None
    line = target_mismatch(ours, flipped)
    assert line is not None and "\n" not in line
    assert "champion predicts churn='No'" in line and "candidate churn='Yes'" in line
    result = verdict(champion_metrics=CHAMPION, target_mismatch=line, comparison=None)
    assert not result.promote
    assert [c.name for c in result.checks][-1] == "target"
    assert result.reason == f"target: {line}"


def _first_run_verdict(signal: float, seed: int = 3):  # type: ignore[no-untyped-def]
    """A new table's first model, judged as `flywheel run --data` would: inferred floors only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from flywheel.data.infer import inferred_floors
    from flywheel.evaluation.metrics import classification_metrics

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4000, 4))
    risk = signal * (x[:, 0] - 0.5 * x[:, 1]) + rng.logistic(size=4000)
    y = (risk > np.quantile(risk, 0.7)).astype(int)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed)
    model = LogisticRegression().fit(x_train, y_train)
    metrics = classification_metrics(y_test, model.predict_proba(x_test)[:, 1], 0.5)
    return metrics, verdict(
        metrics=metrics,
        floors=inferred_floors("binary", pd.Series(y_train)),
        prior=prior_metrics(y_test, y_train.mean(), BINARY),
    )


def test_first_model_on_a_new_table_is_promoted_when_useful_and_refused_when_noise() -> None:
    metrics, useful = _first_run_verdict(signal=1.0)
    assert 0.72 < metrics["roc_auc"] < 0.80  # a modest table, like most real ones
    assert useful.promote, useful.reason

    metrics, noise = _first_run_verdict(signal=0.0)
    assert metrics["roc_auc"] < 0.55
    assert not noise.promote
    assert "baseline" in noise.reason
