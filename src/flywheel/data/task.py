"""What kind of problem a dataset poses, asked by every layer instead of `if binary` checks.

A spec's `task` (binary, multiclass or regression) decides how the target is encoded, which
candidates can train on it, which metrics judge it and in which direction, what the prior
baseline predicts, which columns the model answers with, and which labels `/feedback` accepts.
Each layer asks the `Task` here, so a new task is one place to teach, not a hunt through the
code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from flywheel.data.spec import DatasetSpec
from flywheel.errors import DataError

TaskKind = Literal["binary", "multiclass", "regression"]

# Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae"})

# The metric that selects candidates and that the gate's champion comparison judges, unless
# params.yaml names another one valid for the task.
PRIMARY_METRIC: dict[str, str] = {
    "binary": "roc_auc",
    "multiclass": "macro_f1",
    "regression": "rmse",
}

# The metrics that judge each task (evaluation computes them; the spec's floors may name them).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "f1", "accuracy", "log_loss", "brier"),
    "multiclass": ("macro_f1", "accuracy", "log_loss", "roc_auc"),  # roc_auc: one-vs-rest macro
    "regression": ("rmse", "mae", "r2"),
}

PROBA_PREFIX = "proba_"  # output column of class i's probability, in `spec.classes` order


@dataclass(frozen=True)
class Task:
    kind: TaskKind
    classes: tuple[str, ...] = ()  # empty for regression; binary: (negative, positive)

    @property
    def is_classification(self) -> bool:
        return self.kind != "regression"

    @property
    def primary_metric(self) -> str:
        return PRIMARY_METRIC[self.kind]

    @property
    def metrics(self) -> tuple[str, ...]:
        return TASK_METRICS[self.kind]

    def metric(self, configured: str) -> str:
        """The metric params.yaml names if it judges this task, else the task's primary one:
        params' `roc_auc` is the default dataset's choice and means nothing for a regression."""
        return configured if configured in self.metrics else self.primary_metric

    @property
    def proba_columns(self) -> list[str]:
        """The model output's probability columns, one per class in `classes` order."""
        return [f"{PROBA_PREFIX}{i}" for i in range(len(self.classes))]

    @property
    def output_columns(self) -> list[str]:
        """The columns the served model answers with (registry/pyfunc.py, serving, batch).

        `prediction` is the class label (text) or the number; classification adds one
        probability per class; binary keeps `probability` (the positive class's), which
        clients of earlier rounds read.
        """
        if not self.is_classification:
            return ["prediction"]
        extra = ["probability"] if self.kind == "binary" else []
        return ["prediction", *extra, *self.proba_columns]

    def encode_target(self, values: pd.Series, name: str) -> np.ndarray:
        """Class codes (int64, index into `classes`; binary: 1 = positive) or float64 numbers.

        Anything else (an unknown class, a blank, text in a numeric target) is a DataError
        naming the column and what was expected.
        """
        if not self.is_classification:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
            bad = ~np.isfinite(numbers)
            if bad.any():
                shown = values[bad].head(3).tolist()
                raise DataError(f"target column {name!r}: expected numbers, found {shown}")
            return numbers
        codes, found = pd.factorize(values)
        labels = [category_text(v) for v in found]
        unknown = sorted(set(labels) - set(self.classes))
        if unknown or (codes < 0).any():
            raise DataError(
                f"target column {name!r}: expected only {list(self.classes)}, found "
                f"{unknown[:5] or 'blanks'}"
            )
        index = {label: i for i, label in enumerate(self.classes)}
        return np.array([index[label] for label in labels], dtype=np.int64)[codes]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Class labels for class codes (object array); numbers pass through."""
        if not self.is_classification:
            return np.asarray(codes, dtype="float64")
        return np.asarray(self.classes, dtype=object)[np.asarray(codes, dtype=np.int64)]


def task_of(spec: DatasetSpec) -> Task:
    """The task a spec declares; binary classes are ordered (negative, positive)."""
    if spec.task == "regression":
        return Task("regression")
    if spec.task == "binary":
        return Task("binary", (spec.negative_class, str(spec.positive_class)))
    return Task("multiclass", tuple(spec.classes or ()))


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def category_text(value: object) -> str:
    """Labels are compared as text; 1.0 read from a CSV is the class '1'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
