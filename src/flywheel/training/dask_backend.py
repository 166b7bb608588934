"""Candidate fits as Dask tasks: a local cluster by default, an existing one by its address alone.

The search hands this module the same `fit` and `jobs` it hands the local process pool; Dask
only decides where each fit runs. Why Dask rather than our own sockets: its scheduler already
notices a lost worker and runs that worker's task again on another one (up to its
`distributed.scheduler.allowed-failures`, 3 by default), so a machine lost mid-search delays
the search instead of ending it; and a team that has a cluster points us at it with
FLYWHEEL_DASK_ADDRESS, nothing else.

`fit` travels once per worker (scattered with `broadcast`, so a killed worker takes no only copy
with it), not once per task through the scheduler; each job travels with its task. Workers must
be able to import what `fit` is made of: on a cluster of our own image (infra/k8s/dask) they can.
`distributed` is imported inside the functions: it costs seconds and most runs never use it
(docs/architecture.md, principle 6).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from flywheel.errors import ConfigError
from flywheel.training.outcome import Outcome

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT_S = 20.0  # a scheduler that does not answer by then is a wrong address
WORKERS_TIMEOUT_S = 60.0  # a scheduler with no worker would hold every task forever


def map_fits_dask(
    fit: Callable[[T], R],
    jobs: Sequence[T],
    *,
    workers: int,
    address: str | None = None,
    timeout_s: float | None = None,
) -> list[Outcome[R]]:
    """`fit(job)` for every job, as Dask tasks; outcomes in the order of `jobs`.

    `address` None: a local cluster of `workers` single-threaded processes on 127.0.0.1, closed
    on return. An address: that cluster's workers, however many it has (`workers` is ignored).
    A fit that raises, or whose task Dask gave up on (a worker killed more than
    `allowed-failures` times), is an `Outcome` with `error`, so one bad candidate does not sink
    the others; `timeout_s` bounds the whole map, unfinished fits becoming errors.
    """
    if not jobs:
        return []
    with _client(address, workers) as client:
        log.info("%d fits as Dask tasks on %s (%d workers)", len(jobs),
                 client.scheduler.address, len(client.scheduler_info()["workers"]))
        shared = client.scatter(fit, broadcast=True, hash=False)
        futures = client.map(_timed, jobs, fit=shared, pure=False, key=_keys(len(jobs)))
        return _gather(client, futures, timeout_s)


def _keys(count: int) -> list[str]:
    """Unique task names that say what they are on a dashboard."""
    import uuid

    run = uuid.uuid4().hex[:8]
    return [f"flywheel-fit-{run}-{i}" for i in range(count)]


def _timed(job: Any, fit: Callable[[Any], Any]) -> Outcome[Any]:
    """Runs on a worker: the fit's exception becomes text, so it pickles whatever it was."""
    started = time.perf_counter()
    try:
        value = fit(job)
    except Exception as exc:  # noqa: BLE001 - every failure of one fit is that fit's outcome
        return Outcome(None, time.perf_counter() - started, _one_line(exc))
    return Outcome(value, time.perf_counter() - started)


def _gather(client: Client, futures: list[Future], timeout_s: float | None) -> list[Outcome[Any]]:
    from distributed import wait

    try:
        wait(futures, timeout=timeout_s)
    except TimeoutError:
        client.cancel([f for f in futures if not f.done()])
    return [_outcome(future, timeout_s) for future in futures]


def _outcome(future: Future, timeout_s: float | None) -> Outcome[Any]:
    if future.status == "finished":
        return future.result()  # type: ignore[no-any-return]
    if future.status == "error":
        return Outcome(None, 0.0, _one_line(future.exception()))
    return Outcome(None, 0.0, f"no result within the {timeout_s} s limit")


@contextmanager
def _client(address: str | None, workers: int) -> Iterator[Client]:
    """A client of the cluster at `address`, or of a local cluster started for this map."""
    from distributed import Client, LocalCluster

    if address is None:
        with LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, scheduler_kwargs={"dashboard": False},
            silence_logs=logging.WARNING,
        ) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"FLYWHEEL_DASK_ADDRESS={address}: no Dask scheduler answered within "
            f"{CONNECT_TIMEOUT_S:g} s ({_one_line(exc)}); expected tcp://HOST:PORT of a running "
            "`dask scheduler`, or unset it for a local cluster"
        ) from exc
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError as exc:
            raise ConfigError(
                f"FLYWHEEL_DASK_ADDRESS={address}: the scheduler has no worker after "
                f"{WORKERS_TIMEOUT_S:g} s; start `dask worker {address}` on a machine first"
            ) from exc
        yield client


def _one_line(exc: BaseException | None) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
