"""Load a registered model in a fresh interpreter and predict sample rows.

A model that only loads in the process that trained it (a class defined in a notebook, a
missing package) fails here, before it can be promoted. The checking interpreter is started
before the model is logged and imports its libraries meanwhile (`flywheel run` launches one
when it begins, so its imports are long done by promote); it receives the model URI only
afterwards, so it has never seen the model in memory.

It loads through `integrity.load_verified`, like every other load: the version's signature
(signed `registered` by promote just before) and then its files' SHA-256 are checked first,
so an artifact altered between registering and checking is refused (the parent raises
`IntegrityError`, no alias moves).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from flywheel.registry.integrity import IntegrityError, load_verified
from flywheel.registry.signing import ANY_VERDICT

TIMEOUT_S = 300
# Imported before the model URI arrives; torch loads with a torch model. The SQLite stores'
# modules configure SQLAlchemy's mappers on import, over a second on two cores.
WARM_MODULES = (
    "pandas",
    "sklearn.compose",
    "mlflow.pyfunc",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)
ALTERED = "integrity: "  # prefixes the checker's last line when the digest did not match


def start_checker() -> subprocess.Popen[str]:
    """A fresh interpreter that imports the libraries, then waits for a model to check."""
    return subprocess.Popen(
        [sys.executable, "-m", "flywheel.registry.loadcheck"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_check(
    checker: subprocess.Popen[str], model_uri: str, rows: Path, tracking_uri: str
) -> str | None:
    """None when the model loads and predicts; otherwise the reason, for the gate.

    Raises `IntegrityError` when the files are not the registered ones: that is tampering,
    not a weak model, and stops the promotion with exit code 5 instead of a gate verdict.
    """
    try:
        _, stderr = checker.communicate(f"{model_uri}\n{rows}\n{tracking_uri}\n", TIMEOUT_S)
    except subprocess.TimeoutExpired:
        checker.kill()
        checker.communicate()
        return f"loading {model_uri} took over {TIMEOUT_S} s"
    if checker.returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        if last.startswith(ALTERED):  # not a model that fails the gate: a store that was altered
            raise IntegrityError(last.removeprefix(ALTERED))
        return f"{model_uri} failed to load or predict in a fresh process: {last}"
    return None


def warm_imports() -> None:
    """Import what a check needs, at a low priority, before the model URI arrives.

    A checker started ahead imports while the run's featurize and train work, whose OpenMP
    threads stall when a core is taken away; the check is needed only at the end of promote.
    """
    import importlib
    import os

    os.nice(10)
    for module in WARM_MODULES:
        importlib.import_module(module)


def check_from_stdin() -> None:
    """Read the model URI, the sample rows and the tracking URI; load, verify and predict."""
    model_uri, rows, tracking_uri = (sys.stdin.readline().strip() for _ in range(3))
    if not model_uri:  # the parent gave up before registering: nothing to check
        return

    import mlflow
    import numpy as np
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    frame = pd.read_parquet(rows)
    answer = _load_checked(mlflow.MlflowClient(), model_uri).predict(frame)
    # every task answers `prediction`; classifiers add probabilities (Task.output_columns)
    probability = [c for c in answer.columns if c == "probability" or c.startswith("proba_")]
    proba = np.asarray(answer[probability], dtype="float64")
    if (
        len(answer) != len(frame)
        or "prediction" not in answer.columns
        or not np.all((proba >= 0) & (proba <= 1))
    ):
        raise SystemExit(
            f"predictions malformed: {len(answer)} rows for {len(frame)}, columns "
            f"{list(answer.columns)}, probabilities {proba[:5].tolist()}"
        )


def _load_checked(client: Any, model_uri: str) -> Any:
    """`models:/NAME/VERSION`, loaded only from files whose SHA-256 matches the registered one."""
    name, number = model_uri.removeprefix("models:/").rsplit("/", 1)
    try:
        # No dependency-mismatch warnings: nobody reads this process's warnings, and collecting
        # the installed packages for them takes half a second.
        # Signed `registered` so far: the gate's verdict comes after this check.
        return load_verified(
            client.get_model_version(name, number), suppress_warnings=True, accept=ANY_VERDICT
        )
    except IntegrityError as exc:
        print(ALTERED + " ".join(str(exc).split()), file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None


def _main() -> None:
    warm_imports()
    check_from_stdin()


if __name__ == "__main__":
    from flywheel.process_exit import run_without_teardown

    run_without_teardown(_main)
