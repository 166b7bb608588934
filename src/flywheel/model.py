"""The trained artifact: preprocessing and estimator in one object.

Evaluation scores it, the registry logs it as one MLflow model, and serving loads that very
model, so there is no train/serve skew (docs/architecture.md, principle 4).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from flywheel.atomic import write_atomically
from flywheel.data.io import feature_frame
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import Task, task_of
from flywheel.errors import DataError
from flywheel.features.compiled import CompiledTransformer, compile_transformer


class Estimator(Protocol):
    """Classifiers answer `predict_proba` (n, classes), columns in the task's class order
    (binary: column 1 = positive class); regressors answer `predict` (n,)."""

    def predict(self, X: np.ndarray) -> np.ndarray: ...


@dataclass
class TabularModel:
    spec: DatasetSpec
    # The fitted encoding (features/encoding.py): raw feature frame -> float matrix. Models
    # registered before it carry a scikit-learn ColumnTransformer, compiled on first use.
    transformer: Any
    estimator: Any  # an `Estimator`, trained on transformed rows
    candidate: str
    threshold: float  # binary only: the positive-class probability that predicts positive
    params: dict[str, Any] = field(default_factory=dict)
    valid_metrics: dict[str, float] = field(default_factory=dict)

    @cached_property
    def _compiled(self) -> CompiledTransformer:
        if isinstance(self.transformer, CompiledTransformer):
            return self.transformer
        return compile_transformer(self.transformer)

    @property
    def task(self) -> Task:
        return task_of(self.spec)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities (n, classes) for classification, predicted values (n,) for
        regression, for each row of a raw frame."""
        matrix = self._compiled.transform(feature_frame(self.spec, frame))
        if self.task.is_classification:
            return np.asarray(self.estimator.predict_proba(matrix), dtype="float64")
        return np.asarray(self.estimator.predict(matrix), dtype="float64").reshape(-1)

    def positive_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Binary only: probability of `spec.positive_class` for each row of a raw frame."""
        return self.scores(frame)[:, 1]

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The answer's columns (`Task.output_columns`): the prediction, and per-class
        probabilities for classification."""
        task = self.task
        scores = self.scores(frame)
        if not task.is_classification:
            return pd.DataFrame({"prediction": scores}, index=frame.index)
        if task.kind == "binary":
            codes = (scores[:, 1] >= self.threshold).astype(np.int64)
            columns: dict[str, Any] = {"prediction": task.decode(codes),
                                       "probability": scores[:, 1]}
        else:
            columns = {"prediction": task.decode(scores.argmax(axis=1))}
        columns.update(zip(task.proba_columns, scores.T, strict=True))
        return pd.DataFrame(columns, index=frame.index)


def model_bytes(model: TabularModel) -> bytes:
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def save_model(model: TabularModel, path: Path) -> None:
    """A crash never leaves half a model where the next step looks."""
    data = model_bytes(model)
    write_atomically(path, lambda tmp: tmp.write_bytes(data))


def model_from_bytes(data: bytes, source: Path) -> TabularModel:
    """Unpickle a model whose bytes were already vouched for (a seal or a registry signature):
    unpickling runs code, so callers never hand this bytes they have not checked."""
    model = pickle.loads(data)
    if not isinstance(model, TabularModel):
        raise DataError(f"{source}: not a Flywheel model (got {type(model).__name__})")
    return model


def load_model(path: Path) -> TabularModel:
    """A registered version's model file, which the registry's signature check has passed."""
    if not path.is_file():
        raise DataError(f"{path}: model not found; run the train step first")
    return model_from_bytes(path.read_bytes(), path)
