"""How a model's answer is shown to its users, the same way by every door.

The model answers a frame (`Task.output_columns`: `prediction`, binary `probability`, the
class probabilities as `proba_<code>`). Users never see class codes: the service answers JSON
with `probabilities` keyed by class label, and the flat outputs (the `flywheel predict` file
and the inference log) carry one column per class, `probability_<class label>`, for
multiclass. Binary keeps exactly the flat columns of earlier rounds (`prediction`,
`probability` of the positive class): the other class's column would only repeat `1 - p`.
Regression answers the number alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from flywheel.data.task import Task

PROBABILITY = "probability"  # binary: the positive class's probability
PROBABILITY_PREFIX = "probability_"  # multiclass flat outputs: one column per class label
# The flat column monitoring reads as the answer (output drift, live metrics): the positive
# class's probability, the predicted class, the predicted value.
MONITORED_COLUMN = {"binary": PROBABILITY, "multiclass": "prediction", "regression": "prediction"}


def answer_frame(task: Task, scores: np.ndarray, threshold: float,
                 index: pd.Index) -> pd.DataFrame:
    """A model's answer from its scores (`Task.output_columns`), the same for every kind of
    model: binary predicts positive at `threshold`, multiclass the likeliest class."""
    if not task.is_classification:
        return pd.DataFrame({"prediction": scores}, index=index)
    if task.kind == "binary":
        codes = (scores[:, 1] >= threshold).astype(np.int64)
        columns: dict[str, Any] = {"prediction": task.decode(codes), PROBABILITY: scores[:, 1]}
    else:
        columns = {"prediction": task.decode(scores.argmax(axis=1))}
    columns.update(zip(task.proba_columns, scores.T, strict=True))
    return pd.DataFrame(columns, index=index)


def class_column(label: str) -> str:
    """The flat output column holding one class's probability."""
    return f"{PROBABILITY_PREFIX}{label}"


def flat_columns(task: Task) -> list[str]:
    """The answer columns of the predictions file and the inference log, in order."""
    if task.kind == "multiclass":
        return ["prediction", *(class_column(c) for c in task.classes)]
    if task.kind == "binary":
        return ["prediction", PROBABILITY]
    return ["prediction"]


def class_probabilities(task: Task, output: pd.DataFrame) -> np.ndarray | None:
    """(n, classes) probabilities in `task.classes` order; None when the model gave none.

    A binary model that answers only `probability` (a pyfunc not built here) still has both:
    the negative class's is its complement.
    """
    if not task.is_classification:
        return None
    if all(c in output.columns for c in task.proba_columns):
        return output[task.proba_columns].to_numpy(dtype="float64")
    if task.kind == "binary" and PROBABILITY in output.columns:
        positive = output[PROBABILITY].to_numpy(dtype="float64")
        return np.column_stack([1.0 - positive, positive])
    return None


def flat_answers(task: Task, output: pd.DataFrame) -> dict[str, Any]:
    """The flat answer columns (`flat_columns`) as arrays, from the model's output frame."""
    columns: dict[str, Any] = {"prediction": output["prediction"].array}
    if task.kind == "binary":
        columns[PROBABILITY] = output[PROBABILITY].to_numpy(dtype="float64")
    elif task.kind == "multiclass":
        matrix = class_probabilities(task, output)
        for i, label in enumerate(task.classes):
            columns[class_column(label)] = (np.full(len(output), np.nan) if matrix is None
                                            else matrix[:, i])
    else:
        columns["prediction"] = output["prediction"].to_numpy(dtype="float64")
    return columns


def json_answers(task: Task, output: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON-able answer per row: the prediction (label text or number), binary's
    `probability`, and classification's `probabilities` keyed by class label."""
    if not task.is_classification:
        return [{"prediction": v} for v in output["prediction"].to_numpy(dtype="float64").tolist()]
    labels = output["prediction"].astype(str).tolist()
    matrix = class_probabilities(task, output)
    maps: list[dict[str, float]] = ([{} for _ in labels] if matrix is None else
                                    [dict(zip(task.classes, row, strict=True))
                                     for row in matrix.tolist()])
    if task.kind == "binary":
        positive = output[PROBABILITY].to_numpy(dtype="float64").tolist()
        return [{"prediction": label, PROBABILITY: p, "probabilities": m}
                for label, p, m in zip(labels, positive, maps, strict=True)]
    return [{"prediction": label, "probabilities": m}
            for label, m in zip(labels, maps, strict=True)]
