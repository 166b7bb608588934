"""Load a registered model in a fresh interpreter and predict sample rows.

A model that only loads in the process that trained it (a class defined in a notebook, a
missing package) fails here, before it can be promoted. The checking interpreter is started
early and imports its libraries while the run is logged and registered (the training flow
starts one when it begins, so its imports are long done by promote); it receives the model
URI only afterwards, so it has never seen the model in memory.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TIMEOUT_S = 300
WARM_MODULES = ("pandas", "sklearn.compose", "mlflow.pyfunc")  # torch loads with a torch model


def start_checker() -> subprocess.Popen[str]:
    """A fresh interpreter that imports the libraries, then waits for a model to check."""
    return subprocess.Popen(
        [sys.executable, "-m", "flywheel.registry.loadcheck"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


_STARTED: list[subprocess.Popen[str]] = []  # started ahead by `prestart_checker`


def prestart_checker() -> None:
    """Start a checker now for a promote later in this process; it exits at EOF if unused."""
    _STARTED.append(start_checker())


def take_checker() -> subprocess.Popen[str]:
    """A checker started ahead that is still waiting, or a new one."""
    while _STARTED:
        checker = _STARTED.pop()
        if checker.poll() is None:
            return checker
    return start_checker()


def discard_checkers() -> None:
    """End the checkers started ahead that no promote took (a step failed or was skipped)."""
    while _STARTED:
        checker = _STARTED.pop()
        checker.kill()
        checker.communicate()


def finish_check(
    checker: subprocess.Popen[str], model_uri: str, rows: Path, tracking_uri: str
) -> str | None:
    """None when the model loads and predicts; otherwise the reason, for the gate."""
    try:
        _, stderr = checker.communicate(f"{model_uri}\n{rows}\n{tracking_uri}\n", TIMEOUT_S)
    except subprocess.TimeoutExpired:
        checker.kill()
        checker.communicate()
        return f"loading {model_uri} took over {TIMEOUT_S} s"
    if checker.returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return f"{model_uri} failed to load or predict in a fresh process: {last}"
    return None


def _main() -> None:
    import importlib

    for module in WARM_MODULES:
        importlib.import_module(module)
    model_uri, rows, tracking_uri = (sys.stdin.readline().strip() for _ in range(3))
    if not model_uri:  # the parent gave up before registering: nothing to check
        return

    import mlflow
    import numpy as np
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    frame = pd.read_parquet(rows)
    answer = mlflow.pyfunc.load_model(model_uri).predict(frame)
    proba = np.asarray(answer["probability"], dtype="float64")
    if len(answer) != len(frame) or not np.all((proba >= 0) & (proba <= 1)):
        raise SystemExit(
            f"predictions malformed: {len(answer)} rows for {len(frame)}, probabilities {proba[:5]}"
        )


if __name__ == "__main__":
    _main()
