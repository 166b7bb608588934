"""Minimum functionality: the trained model answers sensibly and clears the release bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flywheel.config import load_params
from flywheel.data.spec import DatasetSpec
from flywheel.evaluation.metrics import classification_metrics
from flywheel.registry.gate import prior_metrics
from tests.model.conftest import Trained


def test_scores_are_finite_probabilities(trained: Trained) -> None:
    proba = trained.model.positive_proba(trained.test)
    assert proba.shape == (len(trained.test),)
    assert np.isfinite(proba).all() and ((proba >= 0) & (proba <= 1)).all()


def test_extreme_but_valid_customers_still_get_probabilities(trained: Trained) -> None:
    """Every numeric feature at its spec's min, then at its max: edges the data never held."""
    spec: DatasetSpec = trained.model.spec
    rows = trained.test.head(2).copy()
    for f in spec.numeric:
        rows[f.name] = [f.min, f.max]
    proba = trained.model.positive_proba(rows)
    assert np.isfinite(proba).all() and ((proba >= 0) & (proba <= 1)).all()


def test_unseen_category_still_gets_a_probability(trained: Trained) -> None:
    answer = trained.model.predict(trained.test.head(5).assign(payment_method="Crypto"))
    assert answer["probability"].between(0, 1).all()
    assert set(answer["prediction"]) <= {"No", "Yes"}


def test_the_label_follows_the_probability_and_the_threshold(trained: Trained) -> None:
    model = trained.model
    answer = model.predict(trained.test)
    positive = answer["probability"] >= model.threshold
    assert (answer["prediction"] == np.where(positive, "Yes", "No")).all()


def test_held_out_metrics_clear_the_specs_floors(trained: Trained) -> None:
    spec = trained.model.spec
    proba = trained.model.positive_proba(trained.test)
    metrics = classification_metrics(trained.y_test, proba, trained.model.threshold)
    assert metrics["roc_auc"] >= spec.floors["roc_auc"] and metrics["roc_auc"] > 0.8
    assert metrics["pr_auc"] >= spec.floors["pr_auc"]
    assert metrics["brier"] <= spec.floors["brier"]


def test_the_model_beats_the_prior_by_the_gates_margins(trained: Trained) -> None:
    """The promotion gate's baseline rule: always answering the training churn rate is beaten."""
    baseline = load_params(trained.root / "params.yaml").promote.baseline
    proba = trained.model.positive_proba(trained.test)
    metrics = classification_metrics(trained.y_test, proba, trained.model.threshold)
    prior = prior_metrics(trained.y_test, trained.train_prevalence, trained.model.task)
    assert metrics["roc_auc"] >= prior["roc_auc"] + baseline.min_auc_gain
    assert metrics["brier"] <= prior["brier"] * (1 - baseline.min_brier_skill)
    assert metrics["log_loss"] < prior["log_loss"]


def test_mean_score_matches_the_churn_rate(trained: Trained) -> None:
    """Calibrated in the large: the average risk is the held-out churn rate, within 3 points."""
    proba = trained.model.positive_proba(trained.test)
    assert abs(proba.mean() - trained.y_test.mean()) < 0.03


def test_clear_cut_customers_are_scored_as_a_person_would(trained: Trained) -> None:
    """Twenty real customers made loyal (six years, two-year contract, automatic payment,
    support) or made leavers (first month, month-to-month, electronic check, fiber, no
    support), their total charges kept consistent with the tenure."""
    loyal = {
        "tenure": 72,
        "contract": "Two year",
        "payment_method": "Bank transfer (automatic)",
        "internet_service": "DSL",
        "tech_support": "Yes",
        "online_security": "Yes",
    }
    leaving = {
        "tenure": 1,
        "contract": "Month-to-month",
        "payment_method": "Electronic check",
        "internet_service": "Fiber optic",
        "tech_support": "No",
        "online_security": "No",
    }
    base = trained.test.head(20)

    def scored(profile: dict[str, object]) -> np.ndarray:
        rows = base.assign(**profile)
        rows["total_charges"] = rows["monthly_charges"] * rows["tenure"]
        return trained.model.positive_proba(rows)

    assert (scored(loyal) < 0.2).all()
    assert (scored(leaving) > 0.5).mean() >= 0.9


def test_model_carries_what_serving_needs(trained: Trained) -> None:
    model = trained.model
    assert model.candidate in {"logreg", "hgb"}
    assert model.spec.positive_class == "Yes" and model.threshold == 0.5
    assert model.valid_metrics["roc_auc"] > 0.8
    assert Path(str(model.spec.path)).name == "wa_churn.csv"
