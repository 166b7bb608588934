"""The budgeted candidate search: successive halving (training/halving.py) over the candidates.

Each rung fits the candidates still in the race concurrently (training/executor.py) on the same
training rows (a seeded subsample, nested from rung to rung; the last rung is every row in its
own order, so a table smaller than the first rung trains exactly as a plain fit of all the
candidates) and scores them on the whole valid split. What each candidate got, its rows,
seconds (in all and per rung), rung and why it stopped, goes with its result
(`CandidateResult.compute`) to candidates.json, the MLflow run and the run summary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.config import TrainParams
from flywheel.data.task import Task, lower_is_better
from flywheel.errors import FlywheelError
from flywheel.training.candidates import (
    BINARY,
    CandidateResult,
    FitJob,
    Matrices,
    encoding_for,
    fit_job,
    report,
    selection_key,
    unwrap,
    workers_for,
)
from flywheel.training.executor import Outcome, map_fits
from flywheel.training.halving import (
    best_first,
    forecast_seconds,
    over_limit,
    rung_fits_budget,
    rung_rows,
    survivors,
    too_costly,
)

log = logging.getLogger(__name__)
ALL_ROWS = "fitted on all rows"


@dataclass
class Searched:
    """Every candidate's last fit (params' order, each with its `compute`), and the finalists:
    those fitted on the most rows any candidate reached, among which the best is selected."""

    results: list[CandidateResult]
    finalists: list[CandidateResult]
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # no fit at all: compute


@dataclass
class _Ledger:
    """What the search has given each candidate so far."""

    plan: list[int]
    last: dict[str, CandidateResult] = field(default_factory=dict)
    rung: dict[str, int] = field(default_factory=dict)
    fits: dict[str, list[float]] = field(default_factory=dict)  # each rung's, scoring included
    stopped: dict[str, str] = field(default_factory=dict)

    def record(self, name: str, rung: int, outcome: Outcome[CandidateResult]) -> None:
        self.fits.setdefault(name, []).append(outcome.seconds)
        if outcome.value is None:
            self.stopped[name] = f"failed at rung {rung}: {outcome.error}"
            log.warning("candidate %s failed at rung %d: %s", name, rung, outcome.error)
            return
        self.last[name], self.rung[name] = outcome.value, rung

    def latest(self, name: str) -> float:
        """Its last fit's seconds: what the forecast of its next fit scales."""
        return self.fits[name][-1]

    def compute(self, name: str) -> dict[str, Any]:
        rung = self.rung.get(name, 0)
        fits = self.fits.get(name, [])
        return {"rows": self.plan[rung], "seconds": round(sum(fits), 2),
                "rung": rung, "rungs": len(self.plan), "fits": [round(s, 2) for s in fits],
                "stopped": self.stopped.get(name, ALL_ROWS)}


def search_candidates(
    params: TrainParams,
    inputs: Mapping[str, Matrices],
    y_train: np.ndarray,
    y_valid: np.ndarray,
    checkpoint_dir: Path,
    progress: Callable[[str], None] | None = None,
    task: Task = BINARY,
) -> Searched:
    """Fit the candidates rung by rung, each rung on more rows, only those that can still win
    going on, within `train.budget_s` and `train.max_candidate_s`."""
    say = progress or (lambda _msg: None)
    rule = params.halving
    ledger = _Ledger(rung_rows(len(y_train), rule.min_rows, rule.factor))
    order = subsample_order(len(y_train), params.seed)
    started, alive = time.perf_counter(), list(params.candidates)
    for rung, rows in enumerate(ledger.plan):
        say(f"rung {rung}: {', '.join(alive)} on {rows} of {len(y_train)} rows")
        jobs = [rung_job(params, task, inputs[encoding_for(name)], (y_train, y_valid),
                         rows_of(order, rows), name, checkpoint_dir) for name in alive]
        outcomes = _fits(jobs, _workers(params, rows), params.executor)
        for job, outcome in zip(jobs, outcomes, strict=True):
            ledger.record(job.name, rung, outcome)
        fitted = [name for name in alive if name not in ledger.stopped]
        if rung == len(ledger.plan) - 1 or not fitted:
            break
        alive = _next_rung(params, task, ledger, fitted, rung, time.perf_counter() - started)
        if not alive:
            break
    return _searched(params, ledger, say)


def subsample_order(rows: int, seed: int) -> np.ndarray:
    """The seeded order in which training rows join the rungs: rung k's rows are its first
    rows (nested: every rung holds the rows of the one before)."""
    return np.random.default_rng(seed).permutation(rows)


def rows_of(order: np.ndarray, rows: int) -> np.ndarray | None:
    """A rung's training rows, in table order; None on the last rung (all rows, as they are)."""
    return None if rows == len(order) else np.sort(order[:rows])


def rung_job(params: TrainParams, task: Task, data: Matrices, y: tuple[np.ndarray, np.ndarray],
             rows: np.ndarray | None, name: str, checkpoint_dir: Path) -> FitJob:
    """A candidate's fit on `rows` of the training split (None: all of them, as they are)."""
    if rows is not None:
        data = Matrices(data.train[rows], data.valid, data.categorical)
        y = (y[0][rows], y[1])
    return FitJob(name, params, task, data, y, checkpoint_dir)


def _workers(params: TrainParams, rows: int) -> int:
    """Fits at a time on `rows` rows: below `halving.min_rows` one after another in this
    process, since each pool worker first imports scikit-learn and torch (seconds), more than
    such fits take (the default table trains as before)."""
    return workers_for(params) if rows >= params.halving.min_rows else 1


def _fits(jobs: list[FitJob], workers: int,
          executor: str) -> list[Outcome[CandidateResult]]:
    """The rung's fits; a user error (bad params, bad data) stops the search as it would alone."""
    outcomes = map_fits(fit_job, jobs, workers=workers, executor=executor)
    for job, outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome.raised, FlywheelError):
            unwrap(outcome, job.name)
    return outcomes


def _next_rung(params: TrainParams, task: Task, ledger: _Ledger, fitted: list[str], rung: int,
               spent_s: float) -> list[str]:
    """Who fits on the next rung's rows; the others' `stopped` says why not."""
    key = selection_key(params.selection_metric, task)
    scores = {name: ledger.last[name].valid_metrics[key] for name in fitted}
    keep = survivors(scores, factor=params.halving.factor, margin=params.halving.margin,
                     lower_is_better=lower_is_better(key))
    leader = best_first(scores, lower_is_better(key))[0]
    rows, next_rows = ledger.plan[rung], ledger.plan[rung + 1]
    for name in fitted:
        if name not in keep:
            ledger.stopped[name] = (f"halved at rung {rung} ({rows} rows): {key} "
                                    f"{scores[name]:.4f}, best {scores[leader]:.4f} ({leader})")
    forecasts = {name: forecast_seconds(ledger.latest(name), rows, next_rows) for name in keep}
    _drop_costly(params, key, scores, forecasts, ledger, rung, leader)
    for name in over_limit(forecasts, params.max_candidate_s):
        ledger.stopped[name] = (f"max_candidate_s: its fit on {next_rows} rows is forecast at "
                                f"{forecasts.pop(name):.0f} s")
    if not rung_fits_budget(list(forecasts.values()), _workers(params, next_rows), spent_s,
                            params.budget_s):
        for name in forecasts:
            ledger.stopped[name] = (f"budget_s: rung {rung + 1} ({next_rows} rows) is forecast "
                                    f"past {params.budget_s:.0f} s")
        return []
    return list(forecasts)


def _drop_costly(params: TrainParams, key: str, scores: dict[str, float],
                 forecasts: dict[str, float], ledger: _Ledger, rung: int, leader: str) -> None:
    """Stop (out of `forecasts`) each candidate the margin alone kept whose next fit is
    forecast past `halving.max_cost_ratio` times the leader's (halving.too_costly)."""
    rows, next_rows = ledger.plan[rung], ledger.plan[rung + 1]
    for name in too_costly(scores, forecasts, factor=params.halving.factor,
                           lower_is_better=lower_is_better(key),
                           max_cost_ratio=params.halving.max_cost_ratio):
        seconds, best_s = forecasts.pop(name), forecasts[leader]
        ledger.stopped[name] = (
            f"max_cost_ratio at rung {rung} ({rows} rows): within margin ({key} "
            f"{scores[name]:.4f} vs best {scores[leader]:.4f}, {leader}) but its fit on "
            f"{next_rows} rows is forecast at {seconds:.1f} s, {seconds / best_s:.1f}x "
            f"{leader}'s {best_s:.1f} s (limit {params.halving.max_cost_ratio:g}x)")


def _searched(params: TrainParams, ledger: _Ledger, say: Callable[[str], None]) -> Searched:
    """The results with their compute; the finalists are those on the highest rung reached."""
    if not ledger.last:  # every fit failed: the first failure, raised
        raise RuntimeError(f"train: every candidate failed; {next(iter(ledger.stopped.values()))}")
    top = max(ledger.rung.values())
    results = []
    for name in params.candidates:
        if name in ledger.last:
            result = ledger.last[name]
            result.compute = ledger.compute(name)
            report(result, say)
            results.append(result)
    failed = {name: ledger.compute(name) for name in params.candidates if name not in ledger.last}
    return Searched(results, [r for r in results if ledger.rung[r.name] == top], failed)
