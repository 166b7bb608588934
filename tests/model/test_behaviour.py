"""Behaviour of the trained artifact on the default data (Made-With-ML's model tests).

The fixture runs the real featurize and train steps with the project's params; the tests
change inputs the way a person would reason about churn and check the model agrees.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.model import TabularModel, load_model
from tests.conftest import make_project, shrink_params


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TabularModel, pd.DataFrame]]:
    from flywheel.steps.context import make_context
    from flywheel.steps.execute import run_step

    root = make_project(tmp_path_factory.mktemp("model") / "project")
    shrink_params(root / "params.yaml", train={"candidates": ["logreg", "hgb"]})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLYWHEEL_ROOT", str(root))
        ctx = make_context()
        run_step("featurize", ctx)
        run_step("train", ctx)
        model = load_model(root / "artifacts" / "train" / "model.pkl")
        test = pd.read_parquet(root / "artifacts" / "featurize" / "test.parquet")
        yield model, test


def test_dropped_id_column_does_not_move_the_score(trained) -> None:  # type: ignore[no-untyped-def]
    model, test = trained
    renumbered = test.assign(rownames=np.arange(len(test))[::-1])
    assert np.array_equal(model.positive_proba(test), model.positive_proba(renumbered))


def test_column_order_does_not_move_the_score(trained) -> None:  # type: ignore[no-untyped-def]
    model, test = trained
    shuffled = test[list(reversed(test.columns))]
    assert np.allclose(model.positive_proba(test), model.positive_proba(shuffled))


def test_longer_tenure_does_not_raise_churn_risk_on_average(trained) -> None:  # type: ignore[no-untyped-def]
    model, test = trained
    loyal = test.assign(tenure=np.minimum(test["tenure"] + 24, 72))
    assert model.positive_proba(loyal).mean() < model.positive_proba(test).mean()


def test_two_year_contract_is_safer_than_month_to_month(trained) -> None:  # type: ignore[no-untyped-def]
    model, test = trained
    monthly = model.positive_proba(test.assign(contract="Month-to-month"))
    two_year = model.positive_proba(test.assign(contract="Two year"))
    assert (two_year <= monthly).mean() > 0.9


def test_unseen_category_still_gets_a_probability(trained) -> None:  # type: ignore[no-untyped-def]
    model, test = trained
    answer = model.predict(test.head(5).assign(payment_method="Crypto"))
    assert answer["probability"].between(0, 1).all()
    assert set(answer["prediction"]) <= {"No", "Yes"}


def test_model_carries_what_serving_needs(trained) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained
    assert model.candidate in {"logreg", "hgb"}
    assert model.spec.positive_class == "Yes" and model.threshold == 0.5
    assert model.valid_metrics["roc_auc"] > 0.8
    assert Path(str(model.spec.path)).name == "wa_churn.csv"
