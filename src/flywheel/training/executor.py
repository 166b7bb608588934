"""The one seam through which the candidate search runs independent fits.

`map_fits` runs `fit` on each job and answers, in the jobs' order, what each gave or why it
failed and how long it took. Locally that is a loky process pool (joblib) on `workers` cores:
candidates fitted one after another leave every core but one idle while the slowest one runs.
Jobs and `fit` cross a process boundary, so both must pickle (a module-level function and
plain data); joblib hands large numpy arrays to the workers as memory maps instead of copies,
and caps each worker's BLAS/OpenMP threads at its share of the cores, so concurrent fits do not
oversubscribe them. One worker, or one job, runs in this process: nothing to spawn or pickle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """A job's result, or the error it raised (as text, and the exception itself so a user
    error keeps its exit code), and the seconds the fit took where it ran."""

    value: R | None
    seconds: float
    error: str | None = None
    raised: Exception | None = None


def map_fits(fit: Callable[[T], R], jobs: Sequence[T], *, workers: int) -> list[Outcome[R]]:
    """`fit(job)` for every job, at most `workers` at a time; one Outcome per job, in order.

    An exception in one fit is that job's Outcome, not the caller's: the other fits finish.
    """
    if workers <= 1 or len(jobs) <= 1:
        return [timed(fit, job) for job in jobs]
    from joblib import Parallel, delayed

    pool = Parallel(n_jobs=min(workers, len(jobs)), backend="loky")
    return list(pool(delayed(timed)(fit, job) for job in jobs))


def timed(fit: Callable[[T], R], job: T) -> Outcome[R]:
    """Run one fit, catching what it raises; module-level so it pickles into a worker."""
    started = time.perf_counter()
    try:
        value = fit(job)
    except Exception as exc:  # the caller decides what a failed fit means
        return Outcome(None, time.perf_counter() - started, f"{type(exc).__name__}: {exc}", exc)
    return Outcome(value, time.perf_counter() - started)
