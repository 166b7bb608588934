"""Read commands while another process writes the registry: one line and exit 6, no traceback.

The test holds the SQLite registry's write lock itself (`BEGIN EXCLUSIVE`, what a promoting run
holds for the length of a write) and runs the commands as a user does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.project_lock import project_lock
from tests.conftest import make_project, project_in_use, run_cli

pytestmark = pytest.mark.slow

BUSY = "is busy (another flywheel run or process holds its write lock); retry in a moment"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose registry holds the model `flywheel status` asks for (no training)."""
    import yaml

    project = make_project(tmp_path_factory.mktemp("busy") / "project", data=False)
    name = yaml.safe_load((project / "params.yaml").read_text())["promote"]["model_name"]
    with project_in_use(project):
        from flywheel.registry import store
        from flywheel.settings import Settings

        store.connect(Settings()).create_registered_model(name)
        yield project


@pytest.fixture()
def locked(root: Path) -> Iterator[Path]:
    """The registry's write lock held for the test, as a writer in another process holds it."""
    conn = sqlite3.connect(root / "mlflow.db", isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield root
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["monitor"], ["rollback"]])
def test_a_locked_registry_is_one_line_and_exit_6(locked: Path, command: list[str]) -> None:
    done = run_cli(locked, *command)

    assert done.returncode == 6, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: the registry sqlite:///{locked / 'mlflow.db'} {BUSY}"
    ]


def test_status_answers_while_a_run_holds_the_project_lock(root: Path) -> None:
    """The project lock keeps writers apart; a reader does not wait for it."""
    from flywheel.settings import Settings

    with project_lock(Settings(), "flywheel run (held by the test)"):
        done = run_cli(root, "status", "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["last_run"]["state"] == "running"
