"""Data contracts on the shipped default table (Made-With-ML's data tests).

Each contract is checked with plain pandas against the spec and params, independently of the
Great Expectations suite the validate step builds from the same spec; the last test runs that
suite too. A contract that stops holding means the data changed under the model: look at the
table before loosening the test.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pandas.api.types import is_numeric_dtype, is_string_dtype

from flywheel.config import Params
from flywheel.data.spec import DatasetSpec
from flywheel.validation import validate_frame

INTERNET_ADD_ONS = (
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
)
BINARY = ("female", "senior_citizen", "partner", "dependents", "phone_service",
          "paperless_billing")  # fmt: skip


def test_columns_are_the_specs_ids_features_and_target(
    default_table: pd.DataFrame, spec: DatasetSpec
) -> None:
    expected = {*spec.id_columns, *spec.feature_names, spec.target}
    assert set(default_table.columns) == expected
    assert len(default_table.columns) == len(expected)  # no duplicated names either


def test_each_column_has_the_dtype_its_kind_needs(
    default_table: pd.DataFrame, spec: DatasetSpec
) -> None:
    wrong = [f.name for f in spec.numeric if not is_numeric_dtype(default_table[f.name])]
    wrong += [f.name for f in spec.categorical if not is_string_dtype(default_table[f.name])]
    assert wrong == [], f"columns of the wrong dtype: {wrong}"
    assert is_string_dtype(default_table[spec.target])


def test_numeric_values_lie_in_the_specs_ranges(
    default_table: pd.DataFrame, spec: DatasetSpec
) -> None:
    outside = {
        f.name: int((~default_table[f.name].dropna().between(f.min, f.max)).sum())
        for f in spec.numeric
    }
    assert {name: n for name, n in outside.items() if n} == {}


@pytest.mark.parametrize("column", BINARY)
def test_binary_flags_are_0_or_1(default_table: pd.DataFrame, column: str) -> None:
    assert set(default_table[column].unique()) == {0, 1}


def test_categorical_values_are_the_specs_categories(
    default_table: pd.DataFrame, spec: DatasetSpec
) -> None:
    unknown = {
        f.name: sorted(set(default_table[f.name].dropna()) - set(f.categories or []))
        for f in spec.categorical
    }
    assert {name: values for name, values in unknown.items() if values} == {}
    unused = {
        f.name: set(f.categories or []) - set(default_table[f.name]) for f in spec.categorical
    }
    assert {name: values for name, values in unused.items() if values} == {}


def test_only_nullable_columns_hold_nulls(default_table: pd.DataFrame, spec: DatasetSpec) -> None:
    nulls = default_table.isna().sum()
    allowed = {f.name for f in spec.features if f.nullable}
    assert set(nulls[nulls > 0].index) <= allowed
    assert nulls[spec.target] == 0 and all(nulls[c] == 0 for c in spec.id_columns)


def test_total_charges_is_missing_only_before_the_first_bill(default_table: pd.DataFrame) -> None:
    """The 11 blanks are customers in their first month (tenure 0), not lost values."""
    missing = default_table["total_charges"].isna()
    assert 0 < missing.sum() < 0.01 * len(default_table)
    assert (default_table.loc[missing, "tenure"] == 0).all()


def test_total_charges_are_about_tenure_times_monthly_charges(default_table: pd.DataFrame) -> None:
    billed = default_table.dropna(subset=["total_charges"])
    ratio = billed["total_charges"] / (billed["tenure"] * billed["monthly_charges"])
    assert ratio.between(0.5, 2.0).all()
    assert abs(ratio.median() - 1.0) < 0.05


def test_service_columns_agree_with_each_other(default_table: pd.DataFrame) -> None:
    no_phone = default_table["phone_service"] == 0
    assert (no_phone == (default_table["multiple_lines"] == "No phone service")).all()
    no_internet = default_table["internet_service"] == "No"
    for add_on in INTERNET_ADD_ONS:
        assert (no_internet == (default_table[add_on] == "No internet service")).all(), add_on


def test_target_holds_both_classes_in_a_plausible_balance(
    default_table: pd.DataFrame, spec: DatasetSpec, params: Params
) -> None:
    """About a quarter of customers churn: far from the floor the validate step enforces, and
    a large move from 26.5% means the data changed, not that churn did."""
    shares = default_table[spec.target].value_counts(normalize=True)
    assert set(shares.index) == set(spec.classes)
    assert shares.min() >= params.validate_.min_class_fraction
    assert 0.20 <= shares[spec.positive_class] <= 0.35


def test_ids_are_unique_and_the_table_is_large_enough(
    default_table: pd.DataFrame, spec: DatasetSpec, params: Params
) -> None:
    for column in spec.id_columns:
        assert default_table[column].is_unique, f"duplicate ids in {column}"
    assert len(default_table) >= params.validate_.min_rows


def test_default_table_passes_its_spec(
    default_table: pd.DataFrame, spec: DatasetSpec, params: Params, tmp_path: Path
) -> None:
    out = tmp_path / "validation"

    report, saved = validate_frame(spec, default_table, params.validate_, out / "docs")

    assert report.success, report.summary()
    assert report.statistics["rows"] == len(default_table) >= params.validate_.min_rows
    assert saved["success"] is True
    assert saved["ge_result"]["statistics"]["unsuccessful_expectations"] == 0
    assert (out / "docs" / "index.html").is_file()
