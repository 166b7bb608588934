"""Load a registered model in a fresh interpreter and predict sample rows.

Run as `python -m flywheel.registry.loadcheck MODEL_URI ROWS.parquet`: a model that only
loads in the process that trained it (a class defined in a notebook, a missing package) fails
here, before it can be promoted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TIMEOUT_S = 300


def check_in_fresh_process(model_uri: str, rows: Path, tracking_uri: str) -> str | None:
    """None when the model loads and predicts; otherwise the reason, for the gate."""
    env_args = [
        sys.executable,
        "-m",
        "flywheel.registry.loadcheck",
        model_uri,
        str(rows),
        tracking_uri,
    ]
    try:
        done = subprocess.run(env_args, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"loading {model_uri} took over {TIMEOUT_S} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{model_uri} failed to load or predict in a fresh process: {last}"
    return None


def _main(model_uri: str, rows: str, tracking_uri: str) -> None:
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
    _main(*sys.argv[1:4])
