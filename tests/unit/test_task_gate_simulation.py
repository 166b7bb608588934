"""The multiclass and regression gate rules' error rates, proved by simulation.

Champion checks: each trial draws a test split, a true signal, and two models that see it
through independent noise; the real comparison (registry/compare.py) and checks
(registry/gate.py) judge it with params.yaml's rules (resamples lowered to 200). Equally good
models must rarely be promoted (the one-sided 2.5% level), a model better by the stated effect
must be promoted at the stated power. Prior baseline: a model that only learned the training
split's base rates (with the noise of fitting them) must rarely pass; a useful one must pass.
Sizes: a penguins-sized multiclass test split would be ~70 rows, too few to tell anything
apart, so both use the size of a typical table's test split (600 rows multiclass, 400 rows
regression: concrete's 1,030 rows give ~200).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.config import Params, load_params
from flywheel.data.task import Task
from flywheel.evaluation.metrics import task_metrics
from flywheel.registry.compare import compare
from flywheel.registry.gate import BASELINES, champion_checks, prior_metrics

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SPECIES = Task("multiclass", ("Adelie", "Chinstrap", "Gentoo"))
REGRESSION = Task("regression")
ISLANDS = np.array(["Biscoe", "Dream", "Torgersen"])


def _params(metric: str | None = None) -> Params:
    """params.yaml's rules, 200 resamples, `island` slices, and `metric` if given."""
    params = load_params(REPO / "params.yaml")
    boot = params.promote.bootstrap.model_copy(update={"resamples": 200})
    judged = {"metric": metric} if metric else {}
    return params.model_copy(
        update={
            "evaluate": params.evaluate.model_copy(update={"slices": ["island"]}),
            "promote": params.promote.model_copy(update={"bootstrap": boot, **judged}),
        }
    )


PARAMS = _params()  # judges params.yaml's metric: roc_auc (one-vs-rest) multiclass, rmse
MACRO_F1 = _params("macro_f1")


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _multiclass_trial(
    rng: np.random.Generator, noise: float, params: Params = MACRO_F1, rows: int = 600
) -> list[bool]:
    """Classes from true logits; each model sees them plus N(0, noise^2) (champion: 1)."""
    logits = 1.5 * rng.normal(size=(rows, 3))
    cumulative = np.cumsum(_softmax(logits), axis=1)
    y = np.minimum((rng.random((rows, 1)) > cumulative).sum(axis=1), 2)

    def model(sd: float) -> np.ndarray:
        return _softmax((logits + sd * rng.normal(size=logits.shape)) / np.sqrt(1 + sd**2 / 3))

    frame = pd.DataFrame({"island": ISLANDS[rng.integers(0, 3, rows)]})
    numbers = compare(params, frame, y, model(noise), model(1.0), SPECIES)
    return [c.passed for c in champion_checks(params.promote, numbers)]


def _regression_trial(rng: np.random.Generator, noise: float, rows: int = 400) -> list[bool]:
    """y = signal + N(0, 1); each model answers signal + N(0, noise^2) (champion: 0.6)."""
    signal = 2.0 * rng.normal(size=rows)
    y = signal + rng.normal(size=rows)
    frame = pd.DataFrame({"island": ISLANDS[rng.integers(0, 3, rows)]})
    candidate = signal + noise * rng.normal(size=rows)
    champion = signal + 0.6 * rng.normal(size=rows)
    numbers = compare(PARAMS, frame, y, candidate, champion, REGRESSION)
    return [c.passed for c in champion_checks(PARAMS.promote, numbers)]


def _promoted(trial, noise: float, trials: int = 200, seed: int = 1) -> float:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    return float(np.mean([all(trial(rng, noise)) for _ in range(trials)]))


def test_equal_multiclass_models_are_rarely_promoted() -> None:
    assert _promoted(_multiclass_trial, noise=1.0) <= 0.05


def test_a_better_multiclass_model_is_promoted_at_the_stated_power() -> None:
    assert _promoted(_multiclass_trial, noise=0.4, trials=100) >= 0.8  # macro-F1 +0.064


def test_equal_regressors_are_rarely_promoted() -> None:
    assert _promoted(_regression_trial, noise=0.6) <= 0.05


def test_a_better_regressor_is_promoted_at_the_stated_power() -> None:
    assert _promoted(_regression_trial, noise=0.3, trials=100) >= 0.8  # rmse -0.12 of 1.17


def test_equal_multiclass_models_judged_by_one_vs_rest_roc_auc_are_rarely_promoted() -> None:
    """params.yaml's metric roc_auc judges a multiclass target too (one-vs-rest, macro)."""
    rng = np.random.default_rng(2)
    promoted = [all(_multiclass_trial(rng, 1.0, PARAMS)) for _ in range(100)]
    assert np.mean(promoted) <= 0.05


def _baseline_passes(task: Task, y: np.ndarray, scores: np.ndarray, prior: object) -> bool:
    """The first-model rule (no champion): params.yaml's prior baseline for the task."""
    metrics = task_metrics(task.kind, y, scores, 0.5)
    bars = prior_metrics(y, prior, task)  # type: ignore[arg-type]
    return all(c.passed for c in BASELINES[task.kind](PARAMS.promote.baseline, metrics, bars))


def _multiclass_baseline_trial(rng: np.random.Generator, signal: float) -> bool:
    """800 training rows give the frequencies; a model scores 200 test rows: with no signal it
    answers the frequencies jittered row by row (what an overfit model of noise does), else
    the true logits seen through N(0, 1) noise, shrunk by `signal` (under-confident)."""
    logits = rng.normal(size=(1000, 3)) * 1.5 + np.log([0.44, 0.2, 0.36])
    cumulative = np.cumsum(_softmax(logits), axis=1)
    y = np.minimum((rng.random((1000, 1)) > cumulative).sum(axis=1), 2)
    prior = np.bincount(y[:800], minlength=3) / 800
    if signal:
        scores = _softmax(signal * (logits[800:] + rng.normal(size=(200, 3))))
    else:
        scores = rng.dirichlet(30 * prior, 200)
    return _baseline_passes(SPECIES, y[800:], scores, prior)


def _regression_baseline_trial(rng: np.random.Generator, signal: float) -> bool:
    """y = signal * x + N(0, 1); the model answers signal * x, or the training mean jittered."""
    x = rng.normal(size=1000)
    y = signal * x + rng.normal(size=1000)
    prior = float(y[:800].mean())
    scores = signal * x[800:] if signal else prior + 0.3 * rng.normal(size=200)
    return _baseline_passes(REGRESSION, y[800:], scores, prior)


@pytest.mark.parametrize("trial", [_multiclass_baseline_trial, _regression_baseline_trial])
def test_the_prior_baseline_refuses_base_rates_and_passes_a_modest_model(trial) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    assert np.mean([trial(rng, 0.0) for _ in range(100)]) <= 0.05
    # regression: R2 about 0.2; multiclass: macro-F1 about 0.61 (prior 0.19), log loss 22% below
    assert np.mean([trial(rng, 0.5) for _ in range(100)]) >= 0.9
