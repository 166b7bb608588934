"""Train every candidate named in params, score each on the valid split, pick the best.

sklearn and torch are imported inside the functions that use them, so `import flywheel.training`
stays cheap for the CLI (docs/architecture.md, principle 6).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.config import TrainParams
from flywheel.errors import ConfigError, DataError

if TYPE_CHECKING:
    from flywheel.features.encoding import Encoding

log = logging.getLogger(__name__)

# Metrics where lower is better; selection flips their sign (hence "neg_log_loss" in params).
_LOWER_IS_BETTER = {"neg_log_loss": "log_loss"}


@dataclass
class CandidateResult:
    name: str
    estimator: Any  # predict_proba(X) -> (n, 2), column 1 = positive class; picklable
    valid_metrics: dict[str, float]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Matrices:
    """One encoding's training and validation matrices."""

    train: np.ndarray
    valid: np.ndarray
    categorical: list[int] = field(default_factory=list)  # columns of category codes


# Which encoding (features/encoding.py) each candidate trains on: HGB splits on category codes
# natively; the others need one-hot numbers on one scale.
ENCODINGS: dict[str, Encoding] = {"logreg": "one_hot", "hgb": "native", "mlp": "one_hot"}


def train_candidates(
    params: TrainParams,
    inputs: Mapping[str, Matrices],
    y_train: np.ndarray,
    y_valid: np.ndarray,
    checkpoint_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> list[CandidateResult]:
    """Fit each of `params.candidates` in order on its encoding (`inputs` by ENCODINGS' names);
    every one sees the same rows and seed."""
    say = progress or (lambda _msg: None)
    results = []
    for name in params.candidates:
        data = inputs[ENCODINGS[name]]
        _check_shapes(data.train, y_train, data.valid, y_valid)
        say(f"training {name} on {len(data.train)} rows x {data.train.shape[1]} features")
        started = time.perf_counter()
        estimator, details = _FITTERS[name](params, data, y_train, y_valid, checkpoint_dir, say)
        seconds = time.perf_counter() - started
        metrics = valid_metrics(y_valid, estimator.predict_proba(data.valid)[:, 1])
        say(f"{name}: valid roc_auc {metrics['roc_auc']:.4f}, pr_auc {metrics['pr_auc']:.4f}, "
            f"log_loss {metrics['log_loss']:.4f} in {seconds:.1f} s")
        log.info("candidate %s: %s in %.2f s (%s)", name, metrics, seconds, details)
        results.append(CandidateResult(name, estimator, metrics, seconds, details))
    return results


def select_best(results: list[CandidateResult], metric: str) -> CandidateResult:
    """Highest roc_auc / pr_auc, or lowest log_loss for "neg_log_loss"; the earlier wins a tie."""
    if not results:
        raise ValueError("select_best: no candidates were trained")
    key = _LOWER_IS_BETTER.get(metric, metric)
    if key not in results[0].valid_metrics:
        raise ConfigError(
            f"train.selection_metric: {metric!r} is not a valid metric "
            f"(expected roc_auc, pr_auc or neg_log_loss)"
        )
    sign = -1.0 if metric in _LOWER_IS_BETTER else 1.0
    best = results[0]
    for result in results[1:]:
        # Strictly better only, so a tie keeps the candidate listed first in params.
        if sign * result.valid_metrics[key] > sign * best.valid_metrics[key]:
            best = result
    return best


def valid_metrics(y_true: np.ndarray, positive_proba: np.ndarray) -> dict[str, float]:
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


def _fit_logreg(params: TrainParams, data: Matrices, y_train: np.ndarray, y_valid: np.ndarray,
                checkpoint_dir: Path, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=params.logreg.C, max_iter=params.logreg.max_iter,
                               random_state=params.seed)
    model.fit(data.train, y_train)
    return model, {"n_iter": int(np.max(model.n_iter_))}


def _fit_hgb(params: TrainParams, data: Matrices, y_train: np.ndarray, y_valid: np.ndarray,
             checkpoint_dir: Path, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    hgb = params.hgb
    model = HistGradientBoostingClassifier(
        learning_rate=hgb.learning_rate, max_iter=hgb.max_iter, max_leaf_nodes=hgb.max_leaf_nodes,
        l2_regularization=hgb.l2_regularization, random_state=params.seed,
        categorical_features=data.categorical or None,
        early_stopping=True, n_iter_no_change=hgb.n_iter_no_change,
    )
    # The valid split judges when to stop, so every training row is fitted on (scikit-learn
    # would otherwise hold out 10% of them for that).
    model.fit(data.train, y_train, X_val=data.valid, y_val=y_valid)
    return model, {"n_iter": int(model.n_iter_)}


def _fit_mlp(params: TrainParams, data: Matrices, y_train: np.ndarray, y_valid: np.ndarray,
             checkpoint_dir: Path, say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    from flywheel.training.distributed import fit_distributed
    from flywheel.training.mlp import fit_mlp

    # On several ranks (`train.mlp.nproc` above 1, or started by a launcher) or alone.
    arrays = (data.train, y_train, data.valid, y_valid)
    fit = fit_distributed(params.mlp, params.seed, *arrays, checkpoint_dir, say) or fit_mlp(
        params.mlp, params.seed, *arrays, checkpoint_dir, progress=say
    )
    return fit.estimator, fit.details


_FITTERS = {"logreg": _fit_logreg, "hgb": _fit_hgb, "mlp": _fit_mlp}


def _check_shapes(X_train: np.ndarray, y_train: np.ndarray, X_valid: np.ndarray,
                  y_valid: np.ndarray) -> None:
    if X_train.ndim != 2 or X_valid.ndim != 2 or X_train.shape[1] != X_valid.shape[1]:
        raise DataError(f"train: train and valid matrices disagree: {X_train.shape} vs "
                        f"{X_valid.shape}")
    if len(X_train) != len(y_train) or len(X_valid) != len(y_valid):
        raise DataError("train: feature rows and target rows differ in number")
    for split, y in (("train", y_train), ("valid", y_valid)):
        if len(np.unique(y)) < 2:
            raise DataError(f"train: the {split} split has only one class; "
                            "a classifier needs both (check the split sizes and the target)")
