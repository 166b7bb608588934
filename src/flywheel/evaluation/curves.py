"""Curve points as JSON records: what DVC's plot templates and our Vega-Lite specs read."""

from __future__ import annotations

import numpy as np

MAX_POINTS = 200
DIGITS = 5


def _thin(count: int, max_points: int) -> np.ndarray:
    """Indices of at most max_points evenly spread points, first and last always kept."""
    if count <= max_points:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, max_points).round().astype("int64"))


def _records(model: str, **columns: np.ndarray) -> list[dict]:
    names = list(columns)
    rows = zip(*(np.round(columns[n].astype("float64"), DIGITS) for n in names), strict=True)
    return [
        {"model": model, **{n: float(v) for n, v in zip(names, row, strict=True)}} for row in rows
    ]


def roc_points(
    y: np.ndarray, proba: np.ndarray, model: str, max_points: int = MAX_POINTS
) -> list[dict]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, proba, drop_intermediate=True)
    keep = _thin(fpr.size, max_points)
    return _records(model, fpr=fpr[keep], tpr=tpr[keep])


def pr_points(
    y: np.ndarray, proba: np.ndarray, model: str, max_points: int = MAX_POINTS
) -> list[dict]:
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, proba, drop_intermediate=True)
    # scikit-learn orders by decreasing threshold from the end; plot from recall 0 upward
    precision, recall = precision[::-1], recall[::-1]
    keep = _thin(recall.size, max_points)
    return _records(model, recall=recall[keep], precision=precision[keep])


def calibration_points(y: np.ndarray, proba: np.ndarray, model: str, bins: int) -> list[dict]:
    """Reliability diagram: mean predicted vs observed positive rate per equal-width bin
    (the bins of sklearn.calibration.calibration_curve); empty bins are left out."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], proba, side="right")
    rows = np.bincount(ids, minlength=bins)
    predicted = np.bincount(ids, weights=proba, minlength=bins)
    positive = np.bincount(ids, weights=y, minlength=bins)
    full = rows > 0
    records = _records(
        model,
        mean_predicted=predicted[full] / rows[full],
        fraction_positive=positive[full] / rows[full],
    )
    for record, count in zip(records, rows[full], strict=True):
        record["rows"] = int(count)
    return records


def confusion_rows(y: np.ndarray, proba: np.ndarray, threshold: float) -> list[dict[str, str]]:
    """One (actual, predicted) pair per test row, the shape DVC's confusion template counts."""
    names = np.array(["negative", "positive"])
    actual = names[y]
    predicted = names[(proba >= threshold).astype("int64")]
    return [{"actual": a, "predicted": p} for a, p in zip(actual, predicted, strict=True)]
