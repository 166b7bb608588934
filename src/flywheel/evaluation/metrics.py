"""Point metrics of a binary classifier, from scikit-learn so the numbers match everyone's."""

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
