"""How Flywheel's processes log: Rich lines for people, third-party chatter kept to warnings."""

from __future__ import annotations

import logging
import os

# Libraries whose INFO lines say nothing a user acts on; the run's summary says what matters.
QUIET_LOGGERS = ("alembic", "mlflow", "urllib3", "httpx", "great_expectations", "dvc")


def setup_logging(verbose: bool = False) -> None:
    """One handler on the root logger; called once by each command, never at import."""
    from rich.logging import RichHandler

    # MLflow configures its own INFO handler and progress bars at import; keep its chatter to
    # errors unless the user asked otherwise.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, markup=False, rich_tracebacks=False)],
        force=True,
    )
    quiet_libraries()


def quiet_libraries() -> None:
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
