"""The image baseline: a logistic regression on pixels downsampled to 14x14.

A second candidate that needs no GPU and no epochs: when the CNN cannot beat it on the valid
split, the CNN is not worth serving. Downsampling (block averages, as
`adaptive_avg_pool2d`) keeps it small and a little tolerant of shifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flywheel.config import LogRegParams

SIDE = 14


def downsampled(batch: np.ndarray, side: int = SIDE) -> np.ndarray:
    """(n, channels, height, width) in [0, 1] -> (n, channels * side * side) block averages."""
    import torch
    from torch.nn import functional as F

    pooled = F.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(batch)), side)
    return pooled.reshape(len(batch), -1).numpy().astype("float64")


@dataclass
class PixelLogistic:
    """`predict_proba` and `embed` (the downsampled pixels) on `decode.to_batch` input."""

    estimator: Any  # a fitted sklearn LogisticRegression
    side: int = SIDE

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(downsampled(batch, self.side)))

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return downsampled(batch, self.side)


def fit_pixel_logreg(
    params: LogRegParams, seed: int, train: tuple[np.ndarray, np.ndarray]
) -> tuple[PixelLogistic, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression

    estimator = LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=seed)
    estimator.fit(downsampled(train[0]), train[1])
    return PixelLogistic(estimator), {"side": SIDE, "iterations": int(np.max(estimator.n_iter_))}
