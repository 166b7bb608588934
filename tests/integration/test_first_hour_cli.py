"""A new user's first mistakes with the server commands, made through the installed CLI: each
is one line naming what was wrong and what to do, with its documented exit code, and no
traceback (issue 20, items 4 and 9)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.errors import PortInUse, RegistryError
from tests.conftest import make_project, run_cli


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("first-hour") / "project")


@pytest.fixture()
def busy_port() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def one_line(result: object) -> str:
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [["serve"], ["alert-receiver"], ["ui"], ["monitor-exporter"]],
    ids=lambda c: c[0],
)
def test_a_busy_port_is_one_line_naming_it(root: Path, busy_port: int, command: list[str]) -> None:
    result = run_cli(root, *command, "--port", str(busy_port),
                     PREFECT_API_URL="http://127.0.0.1:9/api")
    assert result.returncode == PortInUse.exit_code, result.stderr
    line = one_line(result)
    assert f"port {busy_port} on 127.0.0.1 is already in use" in line
    assert f"flywheel {command[0]}" in line and "--port" in line


def test_a_mistyped_model_lists_the_registered_ones(root: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in ("flywheel-churn", "flywheel-credit"):
        client.create_registered_model(name)
    # This project's registry, whatever URIs an earlier test of this worker left behind
    # (MLflow's set_tracking_uri exports MLFLOW_TRACKING_URI; set_registry_uri is a
    # process global that a client without registry_uri follows).
    result = run_cli(root, "serve", "--model", "flywheel-chrun", FLYWHEEL_TRACKING_URI=uri,
                     MLFLOW_TRACKING_URI=uri)
    assert result.returncode == RegistryError.exit_code, result.stderr
    line = one_line(result)
    assert "no registered model 'flywheel-chrun'" in line
    assert "registered: flywheel-churn, flywheel-credit" in line


def test_the_readmes_prometheus_alerts_link_answers(tmp_path: Path) -> None:
    """Debian's prometheus (2.42) ships only the classic UI: `/alerts` is a 404 there."""
    import re
    from contextlib import ExitStack

    import httpx

    from tests.alerting import start
    from tests.conftest import REPO, require_program
    from tests.integration.serving.conftest import free_port

    links = re.findall(r"http://127\.0\.0\.1:9090(/[\w/]*alerts)", (REPO / "README.md").read_text())
    assert links, "the README names no Prometheus alerts page"
    prometheus = require_program("prometheus")
    (tmp_path / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    with ExitStack() as stack:
        running = start(stack, "prometheus", [
            prometheus, "--config.file=prometheus.yml", f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}"], cwd=tmp_path, env={},
            url=f"http://127.0.0.1:{port}", probe="/-/ready")
        for path in set(links):
            assert httpx.get(running.url + path).status_code == 200, path
