"""A model's scores as evaluation and the gate judge them, one shape per task.

Binary: P(positive class), (n,), as every earlier round stored and compared it; multiclass: the
class probabilities, (n, k) in `spec.classes` order; regression: the predicted values, (n,).
Evaluate stores them in predictions.parquet (one column per class for multiclass), promote and
`flywheel promote --version` read them back: one place knows the column names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flywheel.data.task import Task


def judged_scores(task: Task, scores: np.ndarray) -> np.ndarray:
    """The judged shape of `TabularModel.scores`: binary keeps the positive class's column."""
    return scores[:, 1] if task.kind == "binary" else scores


def answer_scores(task: Task, answer: pd.DataFrame) -> np.ndarray:
    """The judged scores from a served model's answer (`Task.output_columns`)."""
    if task.kind == "binary":
        return answer["probability"].to_numpy(dtype="float64")
    if task.kind == "multiclass":
        return answer[task.proba_columns].to_numpy(dtype="float64")
    return answer["prediction"].to_numpy(dtype="float64")


def score_columns(name: str, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of a predictions frame holding one model's scores: `name`, or `name_proba_i`."""
    if scores.ndim == 1:
        return {name: scores}
    return {f"{name}_proba_{i}": scores[:, i] for i in range(scores.shape[1])}


def read_scores(frame: pd.DataFrame, name: str, task: Task) -> np.ndarray:
    """One model's scores back from the columns `score_columns` wrote."""
    if task.kind != "multiclass":
        return frame[name].to_numpy(dtype="float64")
    columns = [f"{name}_{column}" for column in task.proba_columns]
    return frame[columns].to_numpy(dtype="float64")
