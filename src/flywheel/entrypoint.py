"""The `flywheel` console script: the Typer app, ended without interpreter teardown.

The exit handler is registered before the CLI is imported, so it runs after every handler the
CLI's libraries register (`flywheel.process_exit`).
"""

from __future__ import annotations

from flywheel.process_exit import run_without_teardown


def main() -> None:
    run_without_teardown(_app)


def _app() -> None:
    from flywheel.cli import app

    app()
