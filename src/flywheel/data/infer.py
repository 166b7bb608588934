"""Infer a dataset spec from a table, for the user to read, edit and commit.

Great Expectations 1.x no longer profiles data, so this is ours: a few plain rules, every one of
them visible in the YAML it writes.

The task comes from the target column, unless the caller names one (`--task`):
- text (or booleans), or numbers taking at most `MAX_CLASS_VALUES` distinct values that are all
  whole: classification, binary for 2 values, multiclass for more (classes sorted, numbers by
  value). A 0/1 or 1..5 column is a label; nobody regresses on five integers.
- numbers with more distinct values, or any fractional one: regression.
Why a count and not a share: 3 ratings in a million rows are classes, and 500 distinct prices
in 800 rows are a quantity; a share would call either wrong on some table size.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flywheel.data.spec import DatasetSpec, FeatureSpec, GateMetric
from flywheel.data.task import TaskKind, category_text
from flywheel.errors import ConfigError, DataError

POSITIVE_WORDS = ("yes", "true", "1", "positive", "churn", "default", "fraud", "y")
ID_NAMES = ("id", "rownames", "index", "uuid", "key")
MAX_CATEGORIES = 200  # a unique text column longer than this is an id
MAX_LEVELS = 20_000  # a categorical may have thousands of levels (postcodes, products)...
MAX_LEVEL_SHARE = 0.5  # ...but one with a new value in most rows is free text
RANGE_MARGIN = 0.5  # widen observed numeric ranges by half their span: new data may stray
# Conservative: an unknown table's achievable score is unknown, so the floors only refuse a
# model that barely beats knowing the base rate; the gate's prior baseline (params.yaml
# promote.baseline) refuses a useless one. Tighten them in the written spec once you know it.
BINARY_AUC_FLOOR = 0.6  # the prior ranks at 0.5
MACRO_F1_MARGIN = 0.05  # above the macro-F1 of always answering the majority class
R2_FLOOR = 0.05  # the training mean scores about 0
MAX_CLASS_VALUES = 20  # a numeric target with more distinct whole values is a quantity
MAX_TEXT_CLASSES = 200  # a text target with more distinct values is no label to learn


def inferred_floors(task: str, target: pd.Series) -> dict[GateMetric, float]:
    """The floors a new spec proposes for its task, from the target column alone.

    Multiclass: always answering the majority class (share p of k classes) has F1 2p / (1 + p)
    on that class and 0 on the others, so macro-F1 2p / ((1 + p) k); the floor is a little
    above it.
    """
    if task == "binary":
        return {"roc_auc": BINARY_AUC_FLOOR}
    if task == "regression":
        return {"r2": R2_FLOOR}
    shares = target.map(category_text, na_action="ignore").value_counts(normalize=True)
    p, k = float(shares.max()), len(shares)
    return {"macro_f1": round(2 * p / ((1 + p) * k) + MACRO_F1_MARGIN, 3)}


def infer_spec(
    frame: pd.DataFrame, *, target: str, path: Path, name: str, task: TaskKind | None = None
) -> DatasetSpec:
    """The spec for `frame`; `task` overrides the task the target's values suggest."""
    if target not in frame.columns:
        raise DataError(
            f"{path}: target column {target!r} not found; columns are {list(frame.columns)}"
        )
    kind = task or infer_task(frame[target], target)
    classes, positive = _target_classes(frame[target], target, kind)
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
        task=kind,
        classes=classes,
        positive_class=positive,
        id_columns=id_columns,
        features=features,
        floors=inferred_floors(kind, frame[target]),
    )


def infer_task(column: pd.Series, target: str) -> TaskKind:
    """The task the target's values suggest (the rule is in the module docstring)."""
    # Judged on the distinct values: parsing every row cost seconds at a million rows.
    distinct = pd.Series(column.dropna().unique())
    numbers = pd.to_numeric(distinct, errors="coerce")
    numeric = not pd.api.types.is_bool_dtype(column) and bool(numbers.notna().all())
    if numeric and len(numbers):
        whole = bool((numbers == numbers.round()).all())
        if numbers.nunique() > MAX_CLASS_VALUES or not whole:
            return "regression"
    count = distinct.map(category_text).nunique()
    if count > MAX_TEXT_CLASSES:
        raise DataError(
            f"target {target!r} has {count} distinct text values; expected at most "
            f"{MAX_TEXT_CLASSES} classes (or numbers, for a regression)"
        )
    return "binary" if count <= 2 else "multiclass"


def _target_classes(
    column: pd.Series, target: str, kind: TaskKind
) -> tuple[list[str] | None, str | None]:
    """The classes (binary: [negative, positive]) and the positive class; none for regression."""
    if kind == "regression":
        if pd.to_numeric(column.dropna(), errors="coerce").isna().any():
            raise ConfigError(f"--task regression: target {target!r} holds text, not numbers")
        return None, None
    labels = sorted({category_text(v) for v in column.dropna().unique()}, key=label_order)
    if len(labels) < 2:
        raise DataError(f"target {target!r} has {len(labels)} distinct value(s); need two classes")
    if kind == "multiclass":
        if len(labels) < 3:
            raise ConfigError(f"--task multiclass: target {target!r} has only classes {labels}")
        return labels, None
    if len(labels) > 2:
        raise ConfigError(
            f"--task binary: target {target!r} has {len(labels)} classes ({labels[:6]}); "
            "expected 2 (or --task multiclass)"
        )
    by_word = [label for label in labels if label.lower() in POSITIVE_WORDS]
    if len(by_word) == 1:
        positive = by_word[0]
    else:  # the rarer class is usually the one worth predicting
        counts = column.value_counts()
        positive = category_text(counts.idxmin())
    negative = next(label for label in labels if label != positive)
    return [negative, positive], positive


def label_order(label: str) -> tuple[int, float, str]:
    """Numbers by value (2 before 10), then text alphabetically."""
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label


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
