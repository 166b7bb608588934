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


def numeric_values(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The column as float64, and a mask of entries that were given but are not numbers."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        return values, np.zeros(len(values), dtype=bool)
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return values, np.isnan(values) & column.notna().to_numpy()


def row_problems(spec: DatasetSpec, frame: pd.DataFrame) -> np.ndarray:
    """Per row: None when it conforms, else its first problem ("tenure: above max 120")."""
    require_columns(spec, frame)
    problems = np.full(len(frame), None, dtype=object)
    bad = np.zeros(len(frame), dtype=bool)
    for feature in spec.features:
        for mask, what in _feature_problems(feature, frame[feature.name]):
            fresh = mask & ~bad
            if fresh.any():
                problems[fresh] = f"{feature.name}: {what}"
                bad |= fresh
    return problems


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


def _feature_problems(feature: FeatureSpec, column: pd.Series) -> Iterator[tuple[np.ndarray, str]]:
    if feature.kind == "categorical":
        if not feature.nullable:
            yield column.isna().to_numpy(), "missing (the spec does not allow nulls)"
        return
    values, unparsed = numeric_values(column)
    yield unparsed, "not a number"
    if not feature.nullable:
        yield np.isnan(values), "missing (the spec does not allow nulls)"
    yield np.isinf(values), "not finite"
    if feature.min is not None:
        yield values < feature.min, f"below the spec's min {feature.min:g}"
    if feature.max is not None:
        yield values > feature.max, f"above the spec's max {feature.max:g}"
