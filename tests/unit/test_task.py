"""The task abstraction (data/task.py): target encoding, output columns, spec validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flywheel.data.spec import DatasetSpec
from flywheel.data.task import Task, lower_is_better, task_of
from flywheel.errors import DataError

FEATURES = [{"name": "x", "kind": "numeric"}]


def _spec(**fields: object) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {"name": "t", "path": "t.csv", "target": "y", "features": FEATURES, **fields}
    )


def test_each_task_reads_its_spec() -> None:
    binary = task_of(_spec(classes=["no", "yes"], positive_class="yes"))
    assert binary == Task("binary", ("no", "yes"))
    assert binary.output_columns == ["prediction", "probability", "proba_0", "proba_1"]
    multi = task_of(_spec(task="multiclass", classes=["a", "b", "c"]))
    assert multi.output_columns == ["prediction", "proba_0", "proba_1", "proba_2"]
    assert multi.primary_metric == "macro_f1"
    regression = task_of(_spec(task="regression"))
    assert regression.output_columns == ["prediction"]
    assert not regression.is_classification and regression.primary_metric == "rmse"
    assert lower_is_better("rmse") and not lower_is_better("macro_f1")


@pytest.mark.parametrize("fields, problem", [
    ({"task": "regression", "classes": ["a", "b"]}, "no classes"),
    ({"task": "multiclass", "classes": ["a", "b"]}, "at least 3"),
    ({"task": "multiclass", "classes": ["a", "b", "c"], "positive_class": "a"}, "binary"),
    ({"classes": ["a", "b", "c"], "positive_class": "a"}, "2 classes"),
    ({"task": "multiclass", "classes": ["a", "a", "b"]}, "unique"),
])
def test_a_spec_that_does_not_fit_its_task_is_refused(fields: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _spec(**fields)


def test_class_codes_follow_the_spec_order_and_read_numbers_as_text() -> None:
    task = Task("multiclass", ("c", "1", "a"))
    codes = task.encode_target(pd.Series(["a", 1.0, "c", "a"]), "y")
    assert codes.tolist() == [2, 1, 0, 2]
    assert task.decode(codes).tolist() == ["a", "1", "c", "a"]
    with pytest.raises(DataError, match=r"target column 'y': expected only .*\['z'\]"):
        task.encode_target(pd.Series(["a", "z"]), "y")
    with pytest.raises(DataError, match="blanks"):
        task.encode_target(pd.Series(["a", None]), "y")


def test_a_regression_target_is_numbers_only() -> None:
    task = Task("regression")
    assert task.encode_target(pd.Series(["1.5", 2]), "price").tolist() == [1.5, 2.0]
    for bad in (["1", "cheap"], [1.0, np.nan], [1.0, np.inf]):
        with pytest.raises(DataError, match="target column 'price': expected numbers"):
            task.encode_target(pd.Series(bad), "price")


def test_a_configured_metric_applies_only_to_tasks_it_judges() -> None:
    assert Task("binary", ("a", "b")).metric("pr_auc") == "pr_auc"
    assert Task("multiclass", ("a", "b", "c")).metric("roc_auc") == "roc_auc"
    assert Task("multiclass", ("a", "b", "c")).metric("brier") == "macro_f1"
    assert Task("regression").metric("roc_auc") == "rmse"
    assert Task("regression").metric("mae") == "mae"
