"""Does each row of a table conform to its dataset spec? Computed a column at a time.

Scoring a file must report bad rows rather than score them: text in a numeric column would
otherwise become NaN and be imputed, and a value far outside the training range would be
extrapolated without a word. The checks run on whole columns with numpy, so a million rows
cost milliseconds, and every bad row gets the first problem found, naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from flywheel.data.spec import DatasetSpec, FeatureSpec
from flywheel.errors import DataError

_NOT_NULL = "missing (the spec does not allow nulls)"


def numeric_values(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The column as float64, and a mask of entries that were given but are not numbers."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        return values, np.zeros(len(values), dtype=bool)
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return values, np.isnan(values) & column.notna().to_numpy()


def check_rows(spec: DatasetSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The frame with its numeric features as float64, and per row None when it conforms or
    its first problem ("tenure: above the spec's max 120")."""
    require_columns(spec, frame)
    problems = np.full(len(frame), None, dtype=object)
    bad = np.zeros(len(frame), dtype=bool)
    numbers: dict[str, np.ndarray] = {}
    for feature in spec.features:
        column = frame[feature.name]
        if feature.kind == "numeric":
            values, unparsed = numeric_values(column)
            numbers[feature.name] = values
            checks = _numeric_problems(feature, values, unparsed)
        else:
            checks = _category_problems(feature, column)
        for mask, what in checks:
            fresh = mask & ~bad
            if fresh.any():
                problems[fresh] = f"{feature.name}: {what}"
                bad |= fresh
    return frame.assign(**numbers), problems


def require_columns(spec: DatasetSpec, frame: pd.DataFrame) -> None:
    missing = [name for name in spec.feature_names if name not in frame.columns]
    if missing:
        raise DataError(
            f"missing feature columns {missing} (the dataset spec {spec.name!r} needs them)"
        )


def require_numbers(spec: DatasetSpec, frame: pd.DataFrame) -> None:
    """Refuse text in a numeric column instead of imputing it as if it were missing."""
    for feature in spec.numeric:
        column = frame[feature.name]
        _, unparsed = numeric_values(column)
        if unparsed.any():
            row = int(np.flatnonzero(unparsed)[0])
            raise DataError(
                f"column {feature.name!r} must hold numbers; row {row} holds "
                f"{column.iloc[row]!r} ({int(unparsed.sum())} such rows)"
            )


def _category_problems(feature: FeatureSpec, column: pd.Series) -> Iterator[tuple[np.ndarray, str]]:
    if not feature.nullable:
        yield column.isna().to_numpy(), _NOT_NULL


def _numeric_problems(
    feature: FeatureSpec, values: np.ndarray, unparsed: np.ndarray
) -> Iterator[tuple[np.ndarray, str]]:
    yield unparsed, "not a number"
    if not feature.nullable:
        yield np.isnan(values), _NOT_NULL
    yield np.isinf(values), "not finite"
    if feature.min is not None:
        yield values < feature.min, f"below the spec's min {feature.min:g}"
    if feature.max is not None:
        yield values > feature.max, f"above the spec's max {feature.max:g}"
