"""The `flywheel` console script: the Typer app, ended without interpreter teardown.

The exit handler is registered before the CLI is imported, so it runs after every handler the
CLI's libraries register (`flywheel.process_exit`).
"""

from __future__ import annotations

import os

from flywheel.process_exit import run_without_teardown

# Telemetry off for this process and the servers it starts (the temporary Prefect server, MLflow,
# BentoML), before any of them is imported: offline, each attempt printed an error or a
# traceback on the happy path ("Failed to send telemetry"). `make` exported the first two; a
# user running .venv/bin/flywheel by hand had none. A value the user set wins.
OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
}


def main() -> None:
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
    run_without_teardown(_app)


def _app() -> None:
    from flywheel.cli import app

    app()
