"""A regression candidate's evaluation: rmse, mae, r2, predicted-vs-actual and residual plots,
and slices by error (each slice's rmse, mae and r2: where the model is off, not only how much).

The plot data are JSON records with a `model` field, like the binary curves, so `dvc plots`
can draw them with the same by-model template; at most MAX_POINTS rows each, evenly spread
over the rows sorted by actual value, so the file stays small at a million rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flywheel.config import EvaluateParams
from flywheel.evaluation import plots
from flywheel.evaluation.curves import DIGITS
from flywheel.evaluation.metrics import regression_metrics
from flywheel.evaluation.parts import ReportParts
from flywheel.evaluation.slices import model_slices

MAX_POINTS = 1000


def regression_parts(
    y: np.ndarray, models: dict[str, np.ndarray], params: EvaluateParams, frame: pd.DataFrame
) -> ReportParts:
    """Each model's metrics and slices, and both plots' points."""
    metrics = {name: regression_metrics(y, values) for name, values in models.items()}
    slices = model_slices(frame, y, models, params, "regression")
    points = [r for name, values in models.items() for r in prediction_points(y, values, name)]
    return ReportParts(
        metrics=metrics,
        slices=slices,
        files={"plots/predictions.json": points},
        pngs={
            "predictions": plots.render_png(plots.predicted_actual_spec(points)),
            "residuals": plots.render_png(plots.residual_spec(points)),
        },
        summary=f"{y.size} test rows; target mean {float(np.mean(y)):.4g}, standard deviation "
        f"{float(np.std(y)):.4g}.",
    )


def prediction_points(y: np.ndarray, predicted: np.ndarray, model: str) -> list[dict]:
    """(actual, predicted, residual = actual - predicted) of at most MAX_POINTS rows."""
    order = np.argsort(y, kind="mergesort")
    if order.size > MAX_POINTS:
        order = order[np.linspace(0, order.size - 1, MAX_POINTS).round().astype("int64")]
    actual, guess = y[order], predicted[order]
    return [
        {
            "model": model,
            "actual": round(float(a), DIGITS),
            "predicted": round(float(p), DIGITS),
            "residual": round(float(a - p), DIGITS),
        }
        for a, p in zip(actual, guess, strict=True)
    ]
