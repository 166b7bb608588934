"""A real Dask cluster on loopback for tests: one `dask scheduler`, N `dask worker` processes.

Workers run without a nanny, so a test's SIGKILL hits the process that runs the task (a nanny
would restart it, hiding the loss) and the scheduler sees the worker die as a machine would.
They import the test modules that define the fits through PYTHONPATH=REPO. Every wait is
bounded; everything started is stopped, whatever the test did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

DASK = Path(sys.executable).with_name("dask")
START_TIMEOUT_S = 180  # the shared 2-core machine at a load of 12 took ~30 s to start two


@dataclass(frozen=True)
class Cluster:
    address: str
    workers: list[subprocess.Popen[bytes]]


@contextmanager
def dask_cluster(folder: Path, workers: int) -> Iterator[Cluster]:
    """A scheduler and `workers` single-threaded workers, all registered, on 127.0.0.1."""
    scheduler_file = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with ExitStack() as stack:
        stack.enter_context(_running(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)], env, folder / "scheduler.log"))
        address = _await_address(scheduler_file)
        started = [
            stack.enter_context(_running(
                [str(DASK), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--name", f"w{i}", "--memory-limit", "2GiB"],
                env, folder / f"worker{i}.log"))
            for i in range(workers)
        ]
        _await_workers(address, workers)
        yield Cluster(address=address, workers=started)


@contextmanager
def _running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _await_address(scheduler_file: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if scheduler_file.is_file():
            try:
                return str(json.loads(scheduler_file.read_text())["address"])
            except (ValueError, KeyError):
                pass  # written but not complete yet
        time.sleep(0.2)
    raise AssertionError(f"dask scheduler wrote no {scheduler_file} in {START_TIMEOUT_S} s")


def _await_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout=START_TIMEOUT_S) as client:
        client.wait_for_workers(count, timeout=START_TIMEOUT_S)
