"""The trained artifact: preprocessing and estimator in one object.

Evaluation scores it, the registry logs it as one MLflow model, and serving loads that very
model, so there is no train/serve skew (docs/architecture.md, principle 4).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from flywheel.atomic import write_atomically
from flywheel.data.answers import answer_frame
from flywheel.data.io import feature_frame
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import Task, task_of
from flywheel.errors import DataError
from flywheel.features.compiled import CompiledTransformer, compile_transformer
from flywheel.images.model import ImageModel


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
    # A bring-your-own candidate's code origin (training/custom.py); empty for the built-ins.
    origin: dict[str, str] = field(default_factory=dict)

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
        return answer_frame(self.task, self.scores(frame), self.threshold, frame.index)


# What a trained artifact is: a table's model or an image classifier; both answer alike.
Model = TabularModel | ImageModel

PROTOCOL = 4  # see _StablePickler


class _StablePickler(pickle._Pickler):
    """Sets written in sorted order. A set pickles in hash order, and string hashes change with
    every process (pydantic keeps each spec field's `__pydantic_fields_set__` as one): the same
    model retrained in another process gave other bytes, so "identical to a registered version"
    (registry/duplicates.py) could never be seen from the file's digest. The C pickler cannot
    be told how to write a set, hence Python's own (a model pickles in milliseconds either way:
    its arrays go out as whole buffers). Protocol 4, not 5: Python's pickler memoizes each
    protocol-5 buffer's bytes without looking them up first, and every empty array's bytes are
    the one shared `b""`, so a model holding two empty arrays (a ridge or HGB regressor does)
    failed an assertion; under protocol 4 arrays pickle as bytes through the memo like any
    other object."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)  # type: ignore[arg-type]

    def save_set(self, obj: set[Any]) -> None:
        own: Any = self  # the private pickler's helpers are untyped
        own.write(pickle.EMPTY_SET)
        own.memoize(obj)
        items = sorted(obj, key=repr)
        for start in range(0, len(items), 1000):
            own.write(pickle.MARK)
            for item in items[start: start + 1000]:
                own.save(item)
            own.write(pickle.ADDITEMS)

    dispatch[set] = save_set


def model_bytes(model: Model) -> bytes:
    """The model pickled; the same model gives the same bytes in any process."""
    buffer = io.BytesIO()
    _StablePickler(buffer, protocol=PROTOCOL).dump(model)
    return buffer.getvalue()


def save_model(model: Model, path: Path) -> None:
    """A crash never leaves half a model where the next step looks."""
    data = model_bytes(model)
    write_atomically(path, lambda tmp: tmp.write_bytes(data))


def model_from_bytes(data: bytes, source: Path) -> Model:
    """Unpickle a model whose bytes were already vouched for (a seal or a registry signature):
    unpickling runs code, so callers never hand this bytes they have not checked."""
    model = pickle.loads(data)
    if not isinstance(model, TabularModel | ImageModel):
        raise DataError(f"{source}: not a Flywheel model (got {type(model).__name__})")
    return model


def load_model(path: Path) -> Model:
    """A registered version's model file, which the registry's signature check has passed."""
    if not path.is_file():
        raise DataError(f"{path}: model not found; run the train step first")
    return model_from_bytes(path.read_bytes(), path)
