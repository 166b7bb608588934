"""Validation's target checks per task: a multiclass target's classes and their shares, a
regression target's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from flywheel.atomic import replacing_dir
from flywheel.config import ValidateParams
from flywheel.data.spec import DatasetSpec
from flywheel.validation import ValidationReport, validate_frame

ROWS = 60
PARAMS = ValidateParams(min_rows=20, category_mostly=0.9, min_class_fraction=0.1)
FEATURES = [{"name": "size", "kind": "numeric", "min": 0, "max": 100}]
MULTICLASS = DatasetSpec.model_validate({
    "name": "kinds", "path": "data/kinds.csv", "target": "kind", "task": "multiclass",
    "classes": ["a", "b", "c"], "features": FEATURES,
})
REGRESSION = DatasetSpec.model_validate({
    "name": "amounts", "path": "data/amounts.csv", "target": "amount", "task": "regression",
    "features": FEATURES,
})


def frame(target: str, values: list[object]) -> pd.DataFrame:
    size = np.random.default_rng(0).uniform(0, 100, ROWS)
    return pd.DataFrame({"size": size, target: values})


def run(spec: DatasetSpec, table: pd.DataFrame, out: Path) -> ValidationReport:
    with replacing_dir(out / "validation") as staging:
        report, record = validate_frame(spec, table, PARAMS, staging / "docs")
        (staging / "result.json").write_text(json.dumps(record, default=str))
    return report


def target_failures(report: ValidationReport, column: str) -> dict[str, str]:
    return {f.expectation: f.details for f in report.failures if f.column == column}


def test_a_multiclass_target_with_every_class_passes(tmp_path: Path) -> None:
    report = run(MULTICLASS, frame("kind", ["a", "b", "c"] * (ROWS // 3)), tmp_path)
    assert report.success, report.summary()


def test_a_rare_third_class_fails_the_balance_check(tmp_path: Path) -> None:
    values = ["c"] * 3 + ["a", "b"] * ((ROWS - 3) // 2) + ["a"]  # c: 3 of 60 = 5% < 10%
    failures = target_failures(run(MULTICLASS, frame("kind", values), tmp_path), "kind")
    assert "'c'" in failures["expect_column_values_to_be_in_set"]
    assert "5.0%" in failures["expect_column_values_to_be_in_set"]


def test_a_missing_class_and_an_unknown_one_fail(tmp_path: Path) -> None:
    values = ["a", "b"] * (ROWS // 2 - 1) + ["d", "d"]
    failures = target_failures(run(MULTICLASS, frame("kind", values), tmp_path), "kind")
    assert "c" in failures["expect_column_distinct_values_to_contain_set"]


def test_a_numeric_regression_target_passes(tmp_path: Path) -> None:
    values = list(np.linspace(-5.0, 400.0, ROWS))
    report = run(REGRESSION, frame("amount", values), tmp_path)
    assert report.success, report.summary()


def test_text_in_a_regression_target_fails_its_type(tmp_path: Path) -> None:
    values: list[object] = list(np.linspace(0.0, 10.0, ROWS))
    values[4] = "n/a"
    failures = target_failures(run(REGRESSION, frame("amount", values), tmp_path), "amount")
    assert "expect_column_values_to_be_in_type_list" in failures, failures


def test_a_blank_regression_target_fails(tmp_path: Path) -> None:
    values = list(np.linspace(0.0, 10.0, ROWS))
    values[7] = np.nan
    failures = target_failures(run(REGRESSION, frame("amount", values), tmp_path), "amount")
    assert "1 of 60 values are null" in failures["expect_column_values_to_not_be_null"]
