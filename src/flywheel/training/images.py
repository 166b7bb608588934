"""Train an image dataset's candidates on decoded pixels and score each on the valid split.

The candidates (`train.image_candidates`) are the CNN (training/cnn.py) and the pixel
baseline (training/pixels.py); each sees the same decoded train images and is scored with the
tables' valid metrics, so `candidates.select_best` picks among them as it does among a table's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from flywheel.config import TrainParams
from flywheel.data.task import Task
from flywheel.training.candidates import CandidateResult, valid_metrics

Images = tuple[np.ndarray, np.ndarray]  # to_batch pixels (n, C, H, W), class codes (n,)


def train_image_candidates(
    params: TrainParams, task: Task, train: Images, valid: Images,
    progress: Callable[[str], None],
) -> list[CandidateResult]:
    results = []
    for name in params.image_candidates:
        progress(f"training {name} on {len(train[0])} images of {train[0].shape[1:]}")
        started = time.perf_counter()
        network, details = _fit(name, params, task, train, valid)
        seconds = time.perf_counter() - started
        metrics = valid_metrics(valid[1], network.predict_proba(valid[0]), task)
        progress(f"{name}: valid {', '.join(f'{k} {v:.4f}' for k, v in metrics.items())} "
                 f"in {seconds:.1f} s")
        results.append(CandidateResult(name, network, metrics, seconds, details))
    return results


def _fit(name: str, params: TrainParams, task: Task, train: Images, valid: Images
         ) -> tuple[Any, dict[str, Any]]:
    if name == "cnn":
        from flywheel.training.cnn import fit_cnn

        return fit_cnn(params.cnn, params.seed, train, valid, len(task.classes))
    from flywheel.training.pixels import fit_pixel_logreg

    return fit_pixel_logreg(params.logreg, params.seed, train)
