"""Train an image dataset's candidates on decoded pixels and score each on the valid split.

The candidates (`train.image_candidates`) are the CNN (training/cnn.py) and the pixel
baseline (training/pixels.py); each sees the same decoded train images and is scored with the
tables' valid metrics, so `candidates.select_best` picks among them as it does among a table's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.config import TrainParams
from flywheel.data.task import Task
from flywheel.training.candidates import CandidateResult, valid_metrics

Images = tuple[np.ndarray, np.ndarray]  # to_batch pixels (n, C, H, W), class codes (n,)


def train_image_candidates(
    params: TrainParams, task: Task, train: Images, valid: Images,
    progress: Callable[[str], None], checkpoint_dir: Path,
) -> list[CandidateResult]:
    """Each candidate fitted and scored on valid; the CNN's checkpoint goes to `checkpoint_dir`."""
    results = []
    for name in params.image_candidates:
        progress(f"training {name} on {len(train[0])} images of {train[0].shape[1:]}")
        started = time.perf_counter()
        network, details = _fit(name, params, task, (train, valid), checkpoint_dir, progress)
        seconds = time.perf_counter() - started
        metrics = valid_metrics(valid[1], network.predict_proba(valid[0]), task)
        progress(f"{name}: valid {', '.join(f'{k} {v:.4f}' for k, v in metrics.items())} "
                 f"in {seconds:.1f} s")
        results.append(CandidateResult(name, network, metrics, seconds, details))
    return results


def _fit(name: str, params: TrainParams, task: Task, splits: tuple[Images, Images],
         checkpoint_dir: Path, progress: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """The CNN on several ranks (`train.cnn.nproc` above 1, or started by a launcher) or alone;
    the pixel baseline alone."""
    train, valid = splits
    if name == "cnn":
        from flywheel.training.cnn import fit_cnn
        from flywheel.training.cnn_distributed import fit_cnn_distributed

        classes = len(task.classes)
        return fit_cnn_distributed(
            params.cnn, params.seed, train, valid, classes, checkpoint_dir, progress
        ) or fit_cnn(params.cnn, params.seed, train, valid, classes,
                     checkpoint_dir=checkpoint_dir)
    from flywheel.training.pixels import fit_pixel_logreg

    return fit_pixel_logreg(params.logreg, params.seed, train)
