"""One model for the whole session, trained on the default table by the real steps.

`featurize` and `train` run as `flywheel step` runs them (params shrunk as everywhere in the
tests; candidates logistic regression and gradient boosting, ~10 s here), inside a throwaway
project, and every test in tests/model reads the same artifact and the same held-out split.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.model import TabularModel, load_model
from tests.conftest import make_project, project_in_use


@dataclass(frozen=True)
class Trained:
    root: Path
    model: TabularModel
    test: pd.DataFrame  # the held-out split: raw features (and the 0/1 target column)
    y_test: np.ndarray
    train_prevalence: float  # the churn rate the model was trained on


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    from flywheel.steps.context import make_context
    from flywheel.steps.execute import run_step
    from flywheel.steps.inputs import TARGET

    root = make_project(
        tmp_path_factory.mktemp("model") / "project",
        params={"train": {"candidates": ["logreg", "hgb"]}},
    )
    if not (root / "data" / "wa_churn.csv").is_file():
        pytest.skip("data/wa_churn.csv is not in place (run `flywheel pull-data`)")
    with project_in_use(root):
        ctx = make_context()
        run_step("featurize", ctx)
        run_step("train", ctx)
        splits = root / "artifacts" / "featurize"
        test = pd.read_parquet(splits / "test.parquet")
        yield Trained(
            root=root,
            model=load_model(root / "artifacts" / "train" / "model.pkl"),
            test=test,
            y_test=test[TARGET].to_numpy(),
            train_prevalence=float(pd.read_parquet(splits / "train.parquet")[TARGET].mean()),
        )
