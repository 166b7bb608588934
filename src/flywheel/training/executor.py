"""The one seam through which the candidate search runs independent fits.

`map_fits` runs `fit` on each job and answers, in the jobs' order, what each gave or why it
failed and how long it took. Locally that is a loky process pool (joblib) on `workers` cores:
candidates fitted one after another leave every core but one idle while the slowest one runs.
Jobs and `fit` cross a process boundary, so both must pickle (a module-level function and
plain data); joblib hands large numpy arrays to the workers as memory maps instead of copies,
and caps each worker's BLAS/OpenMP threads at its share of the cores, so concurrent fits do not
oversubscribe them. One worker, or one job, runs in this process: nothing to spawn or pickle.
The pool outlives one call (the rungs of a search reuse its warm workers) and `release_workers`
ends it when the search is over: each idle worker holds its imports and data (about 250-500 MiB
on a 250k-row table), which would otherwise sit beside evaluate and promote for loky's 300 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from flywheel.settings import settings
from flywheel.training.outcome import Outcome

__all__ = ["Outcome", "map_fits", "release_workers", "timed"]

T = TypeVar("T")
R = TypeVar("R")
_POOL_STARTED = [False]  # whether this process started loky's reusable pool


def map_fits(fit: Callable[[T], R], jobs: Sequence[T], *, workers: int,
             executor: str = "local") -> list[Outcome[R]]:
    """`fit(job)` for every job, at most `workers` at a time; one Outcome per job, in order.

    An exception in one fit is that job's Outcome, not the caller's: the other fits finish.
    Dask runs them instead (training/dask_backend.py) when FLYWHEEL_DASK_ADDRESS names a
    cluster, or on a local one when `executor` (`train.executor`) is "dask".
    """
    address = settings().dask_address
    if address or executor == "dask":
        from flywheel.training.dask_backend import map_fits_dask

        return map_fits_dask(fit, jobs, workers=workers, address=address or None)
    if workers <= 1 or len(jobs) <= 1:
        return [timed(fit, job) for job in jobs]
    from joblib import Parallel, delayed

    pool = Parallel(n_jobs=min(workers, len(jobs)), backend="loky")
    _POOL_STARTED[0] = True
    return list(pool(delayed(timed)(fit, job) for job in jobs))


def release_workers() -> None:
    """End the local worker processes `map_fits` started, if any (their memory goes back)."""
    if not _POOL_STARTED[0]:
        return
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    _POOL_STARTED[0] = False


def timed(fit: Callable[[T], R], job: T) -> Outcome[R]:
    """Run one fit, catching what it raises; module-level so it pickles into a worker."""
    started = time.perf_counter()
    try:
        value = fit(job)
    except Exception as exc:  # the caller decides what a failed fit means
        return Outcome(None, time.perf_counter() - started, f"{type(exc).__name__}: {exc}", exc)
    return Outcome(value, time.perf_counter() - started)
