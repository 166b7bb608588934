"""What a new user sees when something is missing: one line, a fitting exit code, no traceback.

The CLI runs in its own process, as a user runs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from flywheel.errors import ConfigError, RegistryError
from tests.conftest import run_cli


def flywheel(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI with no Prefect API or MLflow store set, as on a new user's machine."""
    fresh = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_"))}
    return run_cli(root, *args, base=fresh, **env)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when this returns


def test_run_against_a_stopped_prefect_server_names_the_url(project: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api"
    done = flywheel(project, "run", PREFECT_API_URL=url)
    assert done.returncode == ConfigError.exit_code
    line = one_line(done)
    assert url in line and "prefect server start" in line
    assert not (project / "artifacts").exists()  # nothing ran


def test_status_of_an_unknown_model_is_an_error_and_creates_no_store(project: Path) -> None:
    done = flywheel(project, "status", "--model", "nope")
    assert done.returncode == RegistryError.exit_code
    assert "'nope'" in one_line(done)
    assert not (project / "mlflow.db").exists()


def test_promote_force_needs_a_reason(project: Path) -> None:
    done = flywheel(project, "promote", "--version", "1", "--force")
    assert done.returncode == ConfigError.exit_code
    assert "--reason" in one_line(done)


def test_deploy_needs_a_prefect_server(project: Path) -> None:
    done = flywheel(project, "deploy")
    assert done.returncode == ConfigError.exit_code
    assert "PREFECT_API_URL" in one_line(done)
