"""Train every candidate named in params, score each on the valid split, pick the best.

Each candidate fits the spec's task (data/task.py): logreg is a logistic regression (binary, or
multinomial for several classes) and a ridge regression for numbers (alpha = 1 / logreg.C, the
same strength knob); hgb a histogram gradient-boosted classifier or regressor; mlp the torch
network with the task's head (heads.py). sklearn and torch are imported inside the functions that
use them, so `import flywheel.training` stays cheap for the CLI (docs/architecture.md,
principle 6).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.config import TrainParams
from flywheel.data.task import Task, lower_is_better
from flywheel.errors import ConfigError, DataError, FlywheelError
from flywheel.training.custom import encoding_of, is_custom, load_factory, origin
from flywheel.training.executor import Outcome, map_fits

if TYPE_CHECKING:
    from flywheel.features.encoding import Encoding

log = logging.getLogger(__name__)

# params' name for log loss as a score to maximise (scikit-learn's spelling)
_METRIC_NAMES = {"neg_log_loss": "log_loss"}
BINARY = Task("binary", ("0", "1"))  # what a caller without a spec means: the default path


@dataclass
class CandidateResult:
    name: str
    estimator: Any  # classification: predict_proba (n, classes); regression: predict (n,)
    valid_metrics: dict[str, float]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    # what the search gave it: rows, seconds, rung reached, why it stopped (training/rungs.py)
    compute: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Matrices:
    """One encoding's training and validation matrices."""

    train: np.ndarray
    valid: np.ndarray
    categorical: list[int] = field(default_factory=list)  # columns of category codes


# Which encoding (features/encoding.py) each candidate trains on: HGB splits on category codes
# natively; the others need one-hot numbers on one scale.
ENCODINGS: dict[str, Encoding] = {"logreg": "one_hot", "hgb": "native", "mlp": "one_hot"}


def encoding_for(name: str) -> str:
    """A built-in's encoding, or the one a bring-your-own factory asks for (training/custom.py)."""
    if is_custom(name):
        return encoding_of(name)
    return ENCODINGS[name]


@dataclass(frozen=True)
class FitJob:
    """One candidate's fit, as plain data so it pickles into a worker (training/executor.py)."""

    name: str
    params: TrainParams
    task: Task
    data: Matrices
    y: tuple[np.ndarray, np.ndarray]  # y_train, y_valid
    checkpoint_dir: Path
    # where a bring-your-own factory imports from: a pool's worker may predate a change to it
    import_path: tuple[str, ...] = field(default_factory=lambda: tuple(sys.path))


def fit_job(job: FitJob) -> CandidateResult:
    """Fit one candidate and score it on the valid split; module-level, so it pickles."""
    data, (y_train, y_valid), task = job.data, job.y, job.task
    sys.path[:0] = [entry for entry in job.import_path if entry not in sys.path]
    _check_shapes(data.train, y_train, data.valid, y_valid, task)
    started = time.perf_counter()
    fit = _fit_custom(job.name) if is_custom(job.name) else _FITTERS[job.name]
    estimator, details = fit(job.params, task, data, job.y, job.checkpoint_dir, log.info)
    seconds = time.perf_counter() - started
    metrics = valid_metrics(y_valid, predictions(estimator, data.valid, task), task)
    return CandidateResult(job.name, estimator, metrics, seconds, details)


def workers_for(params: TrainParams) -> int:
    """Fits at a time: `train.workers`, else every core; one when the MLP trains on several
    ranks (DDP launches its own processes, and a launched rank must not fork fits)."""
    from flywheel.training.launcher import launched_rank

    if params.mlp.nproc > 1 or launched_rank() is not None:
        return 1
    return params.workers or os.cpu_count() or 1


def unwrap(outcome: Outcome[CandidateResult], name: str) -> CandidateResult:
    """The fit's result, or its error raised again: a user error keeps its type (and exit code)."""
    if outcome.value is not None:
        return outcome.value
    if isinstance(outcome.raised, FlywheelError):
        raise outcome.raised
    raise RuntimeError(f"train: candidate {name} failed: {outcome.error}") from outcome.raised


def train_candidates(
    params: TrainParams,
    inputs: Mapping[str, Matrices],
    y_train: np.ndarray,
    y_valid: np.ndarray,
    checkpoint_dir: Path,
    progress: Callable[[str], None] | None = None,
    task: Task = BINARY,
) -> list[CandidateResult]:
    """Fit each of `params.candidates` on its encoding (`inputs` by ENCODINGS' names) on all
    rows, `workers_for(params)` at a time; every one sees the same rows and seed. Results come
    in the order of params."""
    say = progress or (lambda _msg: None)
    jobs = [FitJob(name, params, task, inputs[encoding_for(name)], (y_train, y_valid),
                   checkpoint_dir) for name in params.candidates]
    for job in jobs:
        say(f"training {job.name} on {len(job.data.train)} rows x {job.data.train.shape[1]} "
            "features")
    outcomes = map_fits(fit_job, jobs, workers=workers_for(params), executor=params.executor)
    results = [unwrap(outcome, job.name) for outcome, job in zip(outcomes, jobs, strict=True)]
    for result in results:
        report(result, say)
    return results


def report(result: CandidateResult, say: Callable[[str], None]) -> None:
    """One line per fitted candidate, to the progress callback and the log."""
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.valid_metrics.items())
    say(f"{result.name}: valid {shown} in {result.seconds:.1f} s")
    log.info("candidate %s: %s in %.2f s (%s)", result.name, result.valid_metrics,
             result.seconds, result.details)


def selection_key(metric: str, task: Task = BINARY) -> str:
    """The valid metric that selects: params' name if it judges the task, else the task's
    primary one (a regression has no roc_auc)."""
    return task.metric(_METRIC_NAMES.get(metric, metric))


def select_best(
    results: list[CandidateResult], metric: str, task: Task = BINARY
) -> CandidateResult:
    """Best on `selection_key(metric, task)` (lowest for a loss or an error); the earlier wins
    a tie."""
    if not results:
        raise ValueError("select_best: no candidates were trained")
    key = selection_key(metric, task)
    if key not in results[0].valid_metrics:
        raise ConfigError(
            f"train.selection_metric: {metric!r} is not scored on the valid split of a "
            f"{task.kind} task (expected one of {sorted(results[0].valid_metrics)})"
        )
    sign = -1.0 if lower_is_better(key) else 1.0
    best = results[0]
    for result in results[1:]:
        # Strictly better only, so a tie keeps the candidate listed first in params.
        if sign * result.valid_metrics[key] > sign * best.valid_metrics[key]:
            best = result
    return best


def predictions(estimator: Any, X: np.ndarray, task: Task) -> np.ndarray:
    """What the metrics read: class probabilities (n, classes), in the estimator's own dtype
    (the binary valid metrics stay those of earlier rounds to the last digit), or predicted
    values (n,)."""
    if task.is_classification:
        return np.asarray(estimator.predict_proba(X))
    return np.asarray(estimator.predict(X), dtype=np.float64).reshape(-1)


def valid_metrics(y_true: np.ndarray, predicted: np.ndarray, task: Task = BINARY
                  ) -> dict[str, float]:
    """The task's selection metrics on the valid split (evaluate judges the test split)."""
    if predicted.ndim == 2 and task.kind == "binary":
        predicted = predicted[:, 1]
    return _VALID_METRICS[task.kind](y_true, predicted)


def _binary_metrics(y_true: np.ndarray, positive_proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    return {
        "roc_auc": float(roc_auc_score(y_true, positive_proba)),
        "pr_auc": float(average_precision_score(y_true, positive_proba)),
        "log_loss": float(log_loss(y_true, positive_proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, positive_proba)),
    }


def _multiclass_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    labels = list(range(proba.shape[1]))
    predicted = proba.argmax(axis=1)
    # one-vs-rest needs every class in the valid rows; the split guarantees two, not all
    complete = len(np.unique(y_true)) == len(labels)
    return {
        "macro_f1": float(f1_score(y_true, predicted, labels=labels, average="macro",
                                   zero_division=0)),
        "accuracy": float(accuracy_score(y_true, predicted)),
        "log_loss": float(log_loss(y_true, proba, labels=labels)),
        "roc_auc": float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro",
                                       labels=labels)) if complete else float("nan"),
    }


def _regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    error = np.asarray(predicted, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    spread = float(((y_true - np.mean(y_true)) ** 2).sum())
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": 1.0 - float((error**2).sum()) / spread if spread > 0 else float("nan"),
    }


_VALID_METRICS = {
    "binary": _binary_metrics,
    "multiclass": _multiclass_metrics,
    "regression": _regression_metrics,
}


Labels = tuple[np.ndarray, np.ndarray]  # y_train, y_valid


def _fit_logreg(params: TrainParams, task: Task, data: Matrices, y: Labels,
                checkpoint_dir: Path, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression, Ridge

    if not task.is_classification:
        ridge = Ridge(alpha=1.0 / params.logreg.C, random_state=params.seed)
        return ridge.fit(data.train, y[0]), {"alpha": ridge.alpha}
    # lbfgs fits one multinomial model for several classes (scikit-learn >= 1.5's default)
    model = LogisticRegression(C=params.logreg.C, max_iter=params.logreg.max_iter,
                               random_state=params.seed)
    model.fit(data.train, y[0])
    return model, {"n_iter": int(np.max(model.n_iter_))}


def _fit_hgb(params: TrainParams, task: Task, data: Matrices, y: Labels,
             checkpoint_dir: Path, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    hgb = params.hgb
    kind = HistGradientBoostingClassifier if task.is_classification else (
        HistGradientBoostingRegressor)
    model = kind(
        learning_rate=hgb.learning_rate, max_iter=hgb.max_iter, max_leaf_nodes=hgb.max_leaf_nodes,
        l2_regularization=hgb.l2_regularization, random_state=params.seed,
        categorical_features=data.categorical or None,
        early_stopping=True, n_iter_no_change=hgb.n_iter_no_change,
    )
    # The valid split judges when to stop, so every training row is fitted on (scikit-learn
    # would otherwise hold out 10% of them for that).
    model.fit(data.train, y[0], X_val=data.valid, y_val=y[1])
    return model, {"n_iter": int(model.n_iter_)}


def _fit_mlp(params: TrainParams, task: Task, data: Matrices, y: Labels,
             checkpoint_dir: Path, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    from flywheel.training.distributed import fit_distributed
    from flywheel.training.mlp import fit_mlp

    # On several ranks (`train.mlp.nproc` above 1, or started by a launcher) or alone.
    arrays = (data.train, y[0], data.valid, y[1])
    fit = fit_distributed(
        params.mlp, params.seed, *arrays, checkpoint_dir, say, task
    ) or fit_mlp(params.mlp, params.seed, *arrays, checkpoint_dir, progress=say, task=task)
    return fit.estimator, fit.details


_FITTERS = {"logreg": _fit_logreg, "hgb": _fit_hgb, "mlp": _fit_mlp}


def _fit_custom(name: str) -> Callable[..., tuple[Any, dict[str, Any]]]:
    """The fitter of an import-path candidate: its factory's estimator, or its torch module
    trained by the MLP loop (one process, train.mlp's settings)."""

    def fit(params: TrainParams, task: Task, data: Matrices, y: Labels,
            checkpoint_dir: Path, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
        import torch
        from torch import nn

        from flywheel.training.mlp import fit_mlp

        torch.manual_seed(params.seed)  # a module's initial weights follow the seed too
        made = load_factory(name)(task=task, params=dict(params.custom.get(name, {})),
                                  seed=params.seed, input_dim=data.train.shape[1])
        details: dict[str, Any] = {"origin": origin(name)}
        if isinstance(made, nn.Module):
            fitted = fit_mlp(params.mlp, params.seed, data.train, y[0], data.valid, y[1],
                             checkpoint_dir, progress=say, task=task, network=made)
            return fitted.estimator, {**fitted.details, **details}
        made.fit(data.train, y[0])
        return made, details

    return fit


def _check_shapes(X_train: np.ndarray, y_train: np.ndarray, X_valid: np.ndarray,
                  y_valid: np.ndarray, task: Task) -> None:
    if X_train.ndim != 2 or X_valid.ndim != 2 or X_train.shape[1] != X_valid.shape[1]:
        raise DataError(f"train: train and valid matrices disagree: {X_train.shape} vs "
                        f"{X_valid.shape}")
    if len(X_train) != len(y_train) or len(X_valid) != len(y_valid):
        raise DataError("train: feature rows and target rows differ in number")
    if not task.is_classification:
        return
    for split, y in (("train", y_train), ("valid", y_valid)):
        if len(np.unique(y)) < 2:
            raise DataError(f"train: the {split} split has only one class; "
                            "a classifier needs both (check the split sizes and the target)")
