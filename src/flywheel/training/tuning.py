"""Optional hyperparameter search of one built-in candidate with Optuna (`train.search`).

A seeded TPE sampler proposes the candidate's settings; each trial fits on the halving rungs'
rows (training/rungs.py: the same nested subsamples, the same valid split) and reports its
valid score after every rung, and a trial below the median of earlier trials at that rung is
pruned before it reaches all rows. `n_trials` and `timeout_s` bound the study. The best trial
that fitted every row comes back with its settings, to compete with the default settings' fit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.config import TrainParams
from flywheel.data.task import Task, lower_is_better
from flywheel.training.candidates import CandidateResult, Matrices, encoding_for, fit_job
from flywheel.training.halving import rung_rows
from flywheel.training.rungs import rows_of, rung_job, subsample_order

log = logging.getLogger(__name__)
Suggest = Callable[[Any], dict[str, Any]]  # an optuna Trial -> the section's changed fields

SPACES: dict[str, Suggest] = {
    "logreg": lambda t: {"C": t.suggest_float("C", 1e-3, 1e2, log=True)},
    "hgb": lambda t: {
        "learning_rate": t.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_leaf_nodes": t.suggest_int("max_leaf_nodes", 8, 128, log=True),
        "l2_regularization": t.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
    },
    "mlp": lambda t: {
        "lr": t.suggest_float("lr", 1e-4, 1e-2, log=True),
        "dropout": t.suggest_float("dropout", 0.0, 0.5),
        "weight_decay": t.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
    },
}


@dataclass
class Tuned:
    """The study: every trial (number, settings, state, rows reached, last valid score) and
    the best full fit (None when no trial fitted every row)."""

    candidate: str
    metric: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: CandidateResult | None = None

    def summary(self) -> dict[str, Any]:
        """What search.json, the lineage and the nested MLflow runs record."""
        best = self.best.details["params"] if self.best else None
        return {"candidate": self.candidate, "metric": self.metric, "best_params": best,
                "best_value": self.best.valid_metrics[self.metric] if self.best else None,
                "trials": self.trials}


def tune(params: TrainParams, name: str, inputs: Mapping[str, Matrices], y: tuple[np.ndarray,
         np.ndarray], checkpoint_dir: Path, task: Task, metric: str) -> Tuned:
    """Run the study for candidate `name`, selecting on valid `metric`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = rung_rows(len(y[0]), params.halving.min_rows, params.halving.factor)
    order = subsample_order(len(y[0]), params.seed)
    lower = lower_is_better(metric)
    tuned = Tuned(name, metric)
    study = optuna.create_study(
        direction="minimize" if lower else "maximize",
        sampler=optuna.samplers.TPESampler(seed=params.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3),
    )

    def objective(trial: Any) -> float:
        section = getattr(params, name).model_copy(update=SPACES[name](trial))
        trial_params = params.model_copy(update={name: section})
        for step, rows in enumerate(plan):
            job = rung_job(trial_params, task, inputs[encoding_for(name)], y,
                           rows_of(order, rows), name, checkpoint_dir)
            result = fit_job(job)
            value = result.valid_metrics[metric]
            tuned.trials.append({"number": trial.number, "params": dict(trial.params),
                                 "rows": rows, "value": value, "state": "running"})
            trial.report(value, step)
            if step < len(plan) - 1 and trial.should_prune():
                tuned.trials[-1]["state"] = "pruned"
                raise optuna.TrialPruned()
        tuned.trials[-1]["state"] = "complete"
        if tuned.best is None or _better(value, tuned.best.valid_metrics[metric], lower):
            result.details["params"] = section.model_dump()
            result.compute = {"rows": len(y[0]), "seconds": round(result.seconds, 2),
                              "rung": len(plan) - 1, "rungs": len(plan),
                              "stopped": f"search: trial {trial.number}"}
            tuned.best = result
        return value

    study.optimize(objective, n_trials=params.search.n_trials, timeout=params.search.timeout_s)
    tuned.trials = [t for t in tuned.trials if t["state"] != "running"]  # one row per trial
    log.info("search of %s: %d trials, best %s", name, len(tuned.trials), tuned.summary())
    return tuned


def _better(value: float, best: float, lower: bool) -> bool:
    """Strictly better: a tie keeps the earlier trial."""
    return value < best if lower else value > best
