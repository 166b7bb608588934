"""What the split demands of each split per task: both classes (binary), every class in train
(multiclass), rows alone (regression)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flywheel.data.task import Task
from flywheel.errors import DataError
from flywheel.features.split import SplitRule, assign, split_rows

RULE = SplitRule(method="hash", key_columns=["key"], seed=0, test_size=0.2, valid_size=0.2)
TABLE = pd.DataFrame({"key": range(300)})
CODES = assign(TABLE, RULE)
MULTICLASS = Task("multiclass", ("a", "b", "c"))


def test_multiclass_passes_with_every_class_everywhere() -> None:
    y = np.arange(300) % 3
    rows = split_rows(TABLE, y, RULE, MULTICLASS)
    assert sorted(np.concatenate(list(rows.values()))) == list(range(300))


def test_a_class_absent_from_train_is_a_data_error() -> None:
    y = np.where(CODES == 0, np.arange(300) % 2, 2)  # class 2 only in valid and test
    with pytest.raises(DataError, match="train split has .* holding 2 of 3 classes; it needs "
                                        "every class"):
        split_rows(TABLE, y, RULE, MULTICLASS)


def test_a_single_class_test_split_is_a_data_error() -> None:
    y = np.where(CODES == 2, 0, np.arange(300) % 3)
    with pytest.raises(DataError, match="test split has .* holding 1 of 3 classes; it needs two"):
        split_rows(TABLE, y, RULE, MULTICLASS)


def test_regression_needs_rows_not_classes() -> None:
    y = np.full(300, 7.5)  # a constant is no class problem (validation judges the values)
    assert set(split_rows(TABLE, y, RULE, Task("regression"))) == {"train", "valid", "test"}
    few = pd.DataFrame({"key": [0, 1, 2]})
    with pytest.raises(DataError, match="a regression needs two at least"):
        split_rows(few, np.zeros(3), RULE, Task("regression"))


def test_binary_is_the_default_and_keeps_its_message() -> None:
    with pytest.raises(DataError, match="rows and 0 positives; it needs both classes"):
        split_rows(TABLE, np.zeros(300, dtype=int), RULE)
