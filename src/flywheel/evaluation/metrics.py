"""Point metrics of each task (binary, multiclass, regression), from scikit-learn so the
numbers match everyone's."""

from __future__ import annotations

import numpy as np

from flywheel.errors import DataError

METRIC_NAMES = ("roc_auc", "pr_auc", "f1", "accuracy", "log_loss", "brier")


def check_scores(
    y_true: np.ndarray, proba: np.ndarray, what: str = "proba"
) -> tuple[np.ndarray, np.ndarray]:
    """Coerce to 1-d arrays and refuse misaligned or out-of-range input with a readable error."""
    y = np.asarray(y_true).ravel()
    p = np.asarray(proba, dtype="float64").ravel()
    if y.shape != p.shape:
        raise DataError(f"{what} has {p.size} values for {y.size} labels; they must align by row")
    if y.size == 0:
        raise DataError("no rows to evaluate: the test split is empty")
    if not np.isin(y, (0, 1)).all():
        raise DataError("y_true must be 0/1 (1 = positive class)")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise DataError(f"{what} must be finite probabilities in [0, 1]")
    return y.astype("int64"), p


def metrics_or_none(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float | None]:
    """All metrics; the ranking ones are None when they are undefined (a single class)."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        brier_score_loss,
        f1_score,
        log_loss,
        roc_auc_score,
    )

    positives = int(y.sum())
    both = 0 < positives < y.size
    predicted = (p >= threshold).astype("int64")
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if positives else None,
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(y, predicted)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p, pos_label=1)),
    }


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, threshold: float
) -> dict[str, float]:
    """roc_auc, pr_auc (average precision), f1, accuracy, log_loss and brier of P(positive)."""
    y, p = check_scores(y_true, proba)
    values = metrics_or_none(y, p, threshold)
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise DataError(
            f"{', '.join(missing)} undefined: the evaluated rows hold a single class "
            f"({int(y.sum())} positives of {y.size}); use a larger or stratified test split"
        )
    return {name: float(value) for name, value in values.items() if value is not None}


def check_class_scores(
    y_true: np.ndarray, proba: np.ndarray, what: str = "proba"
) -> tuple[np.ndarray, np.ndarray]:
    """Class codes (n,) and class probabilities (n, k) whose rows sum to 1, aligned and in
    range, or a DataError."""
    y = np.asarray(y_true).ravel()
    p = np.asarray(proba, dtype="float64")
    if p.ndim != 2 or p.shape[0] != y.size:
        raise DataError(f"{what} has shape {p.shape} for {y.size} labels; expected (rows, classes)")
    if y.size == 0:
        raise DataError("no rows to evaluate: the test split is empty")
    if not np.isin(y, np.arange(p.shape[1])).all():
        raise DataError(f"y_true must be class codes 0..{p.shape[1] - 1}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise DataError(f"{what} must be finite probabilities in [0, 1]")
    # A float32 softmax sums to 1 within ~1e-7, looser than scikit-learn's check: rescaled once
    # here, every metric and every bootstrap draw reads the same rows.
    total = p.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise DataError(f"{what}: a row's probabilities sum to 0")
    return y.astype("int64"), p / total


def check_values(
    y_true: np.ndarray, predicted: np.ndarray, what: str = "prediction"
) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions as aligned finite 1-d float arrays, or a DataError."""
    y = np.asarray(y_true, dtype="float64").ravel()
    v = np.asarray(predicted, dtype="float64").ravel()
    if y.shape != v.shape:
        raise DataError(f"{what} has {v.size} values for {y.size} targets; they must align by row")
    if y.size == 0:
        raise DataError("no rows to evaluate: the test split is empty")
    if not (np.isfinite(y).all() and np.isfinite(v).all()):
        raise DataError(f"targets and {what} must be finite numbers")
    return y, v


def multiclass_brier(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean over rows of sum_k (p_k - [y = k])^2: 0 when certain and right, 2 when certain and
    wrong (twice the binary Brier score of the same binary predictions)."""
    onehot = np.eye(proba.shape[1])[y]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def multiclass_metrics_or_none(y: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    """macro_f1, accuracy, log_loss, roc_auc (one-vs-rest, macro) and brier (multiclass) of the
    most probable class; roc_auc is None unless every class occurs among the rows."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    labels = np.arange(proba.shape[1])
    predicted = proba.argmax(axis=1)
    every_class = np.unique(y).size == labels.size
    return {
        "macro_f1": float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, predicted)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-15, 1.0), labels=labels)),
        "roc_auc": (
            float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels))
            if every_class
            else None
        ),
        "brier": multiclass_brier(y, proba),
    }


def per_class_table(y: np.ndarray, proba: np.ndarray, classes: tuple[str, ...]) -> list[dict]:
    """Precision, recall, F1 and support of each class (in `classes` order) for the most
    probable class: the macro average hides which class a model gets wrong."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, proba.argmax(axis=1), labels=labels, zero_division=0
    )
    return [
        {
            "class": name,
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(s),
        }
        for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    ]


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """rmse, mae and r2 (1 - SSE / SST around the evaluated rows' mean). A constant target has
    no variance to explain: r2 is then 1 for a perfect fit and 0 otherwise, as scikit-learn."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y, v = check_values(y_true, predicted)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, v))),
        "mae": float(mean_absolute_error(y, v)),
        "r2": float(r2_score(y, v)) if y.size > 1 else 0.0,
    }


def multiclass_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """The multiclass metrics; roc_auc undefined (a class missing from the rows) is an error."""
    y, p = check_class_scores(y_true, proba)
    values = multiclass_metrics_or_none(y, p)
    if values["roc_auc"] is None:
        raise DataError(
            f"roc_auc undefined: the evaluated rows hold {np.unique(y).size} of "
            f"{p.shape[1]} classes; use a larger or stratified test split"
        )
    return {name: float(value) for name, value in values.items() if value is not None}


def task_metrics(
    kind: str, y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """The metrics that judge a task (data/task.py): binary reads P(positive) at `threshold`,
    multiclass the (n, k) class probabilities, regression the predicted values."""
    if kind == "binary":
        return classification_metrics(y_true, scores, threshold)
    if kind == "multiclass":
        return multiclass_metrics(y_true, scores)
    return regression_metrics(y_true, scores)
