"""Infer a dataset spec from a table, for the user to read, edit and commit.

Great Expectations 1.x no longer profiles data, so this is ours: a few plain rules, every one of
them visible in the YAML it writes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flywheel.data.spec import DatasetSpec, FeatureSpec, GateMetric
from flywheel.data.task import category_text
from flywheel.errors import ConfigError, DataError

POSITIVE_WORDS = ("yes", "true", "1", "positive", "churn", "default", "fraud", "y")
ID_NAMES = ("id", "rownames", "index", "uuid", "key")
MAX_CATEGORIES = 200  # a unique text column longer than this is an id
MAX_LEVELS = 20_000  # a categorical may have thousands of levels (postcodes, products)...
MAX_LEVEL_SHARE = 0.5  # ...but one with a new value in most rows is free text
RANGE_MARGIN = 0.5  # widen observed numeric ranges by half their span: new data may stray
# Conservative: an unknown table's achievable score is unknown, so the floor only refuses a
# model that barely ranks; the gate's prior baseline (params.yaml promote.baseline) refuses
# a useless one. Tighten them in the written spec once you know the table.
INFERRED_FLOORS: dict[GateMetric, float] = {"roc_auc": 0.6}


def infer_spec(frame: pd.DataFrame, *, target: str, path: Path, name: str) -> DatasetSpec:
    if target not in frame.columns:
        raise DataError(
            f"{path}: target column {target!r} not found; columns are {list(frame.columns)}"
        )
    classes, positive = _target_classes(frame[target], target)
    id_columns = [c for c in frame.columns if c != target and _looks_like_id(frame[c])]
    candidates = (
        _feature(c, frame[c]) for c in frame.columns if c != target and c not in id_columns
    )
    features = [f for f in candidates if f is not None]
    if not features:
        raise DataError(f"{path}: no usable feature columns besides target {target!r}")
    return DatasetSpec(
        name=name,
        path=path,
        target=target,
        classes=classes,
        positive_class=positive,
        id_columns=id_columns,
        features=features,
        floors=INFERRED_FLOORS,
    )


def _target_classes(column: pd.Series, target: str) -> tuple[list[str], str]:
    labels = sorted({category_text(v) for v in column.dropna().unique()})
    if len(labels) < 2:
        raise DataError(f"target {target!r} has {len(labels)} distinct value(s); need two classes")
    if len(labels) > 2:
        raise ConfigError(
            f"target {target!r} has {len(labels)} classes ({labels[:6]}...): multiclass "
            "targets are not supported yet; Flywheel trains binary classifiers"
        )
    by_word = [label for label in labels if label.lower() in POSITIVE_WORDS]
    if len(by_word) == 1:
        positive = by_word[0]
    else:  # the rarer class is usually the one worth predicting
        counts = column.value_counts()
        positive = category_text(counts.idxmin())
    negative = next(label for label in labels if label != positive)
    return [negative, positive], positive


def _looks_like_id(column: pd.Series) -> bool:
    named = str(column.name).lower() in ID_NAMES or str(column.name).lower().endswith("_id")
    unique = column.notna().all() and column.nunique() == len(column)
    textual = not pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return bool(unique and (named or (textual and len(column) > MAX_CATEGORIES)))


def _feature(name: str, column: pd.Series) -> FeatureSpec | None:
    nullable = bool(column.isna().any())
    if column.isna().all():
        return None
    if pd.api.types.is_bool_dtype(column):
        return FeatureSpec(
            name=name, kind="categorical", nullable=nullable, categories=["False", "True"]
        )
    if not pd.api.types.is_numeric_dtype(column) and _parsed_share(column) < 0.99:
        return _categorical(name, column, nullable)
    numbers = pd.to_numeric(column, errors="coerce")
    parsed = numbers.notna().sum() / max(column.notna().sum(), 1)
    low, high = float(numbers.min()), float(numbers.max())
    if numbers.dropna().isin([0, 1]).all():  # a flag: its range is exact
        return FeatureSpec(name=name, kind="numeric", nullable=nullable, min=0.0, max=1.0)
    margin = (high - low) * RANGE_MARGIN
    floor = max(0.0, low - margin) if low >= 0 else low - margin
    return FeatureSpec(
        name=name, kind="numeric", nullable=nullable or parsed < 1, min=floor, max=high + margin
    )


def _parsed_share(column: pd.Series) -> float:
    """Share of a text column's values that read as numbers, judged once per distinct value
    (parsing every row cost seconds per column at a million rows)."""
    counts = column.value_counts()
    parsed = pd.to_numeric(counts.index.to_series(), errors="coerce").notna().to_numpy()
    return float(counts.to_numpy()[parsed].sum() / max(counts.sum(), 1))


def _categorical(name: str, column: pd.Series, nullable: bool) -> FeatureSpec | None:
    categories = sorted({category_text(v) for v in column.dropna().unique()})
    if len(categories) > min(MAX_LEVELS, MAX_LEVEL_SHARE * column.notna().sum()):
        return None  # free text: nothing a one-hot encoder should see
    return FeatureSpec(name=name, kind="categorical", nullable=nullable, categories=categories)
