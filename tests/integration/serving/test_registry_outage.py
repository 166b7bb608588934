"""The tracking server goes away while `bentoml serve` reads its champion from it, then returns.

A real `mlflow server` on a loopback port (its own SQLite store and artifacts folder) holds the
champion; the service keeps answering with the model it loaded, stays ready, counts every
failed poll, logs the outage once, and picks up a new champion once the server is back on the
same port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.serving.conftest import (
    Registry,
    Server,
    free_port,
    start_server,
    stop_process,
    stop_server,
    wait_for,
)
from tests.integration.serving.test_service import sample_value, scrape

pytestmark = pytest.mark.slow

TRACKING_START_TIMEOUT_S = 300  # measured 100 s to start under a load of 18 (2 cores)
REGISTRY_ERRORS = "flywheel_model_reloads_total"


@dataclass
class Tracking:
    """One `mlflow server`, restartable on the same port over the same store."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        log = (self.folder / "tracking.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [
                    str(mlflow),
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    f"sqlite:///{self.folder / 'mlflow.db'}",
                    "--artifacts-destination",
                    str(self.folder / "artifacts"),
                ],
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            )
        wait_for(self._healthy, TRACKING_START_TIMEOUT_S, f"mlflow server on {self.url}")

    def _healthy(self) -> bool:
        assert self.process is not None and self.process.poll() is None, (
            self.folder / "tracking.log"
        ).read_text(errors="replace")[-3000:]
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracking]:
    server = Tracking(tmp_path_factory.mktemp("tracking"), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _remote_registry(tracking: Tracking, local: Registry) -> Registry:
    """The session's trained model uploaded to the tracking server, as a run's artifacts."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking.url, registry_uri=tracking.url)
    experiment = client.create_experiment("registry-outage")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, local.artifacts.removeprefix("file://"), "model")
    client.set_terminated(run.info.run_id)
    return Registry(
        uri=tracking.url,
        name=local.name,
        run_id=run.info.run_id,
        model_source=f"runs:/{run.info.run_id}/model",
    )


def test_the_service_outlives_a_stopped_tracking_server(
    tracking: Tracking,
    registry: Registry,
    tmp_path: Path,
    records: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    # `runs:/` downloads (the digests) follow the global URI, which an earlier test in this
    # process may have set: point it at the server for this test, then put it back.
    # MLflow's setter writes MLFLOW_TRACKING_URI as well: monkeypatch records the variable
    # first, so the test's end restores it and no later CLI process of this worker inherits a
    # stopped server's URI.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking.url)
    try:
        remote = _remote_registry(tracking, registry)
        remote.register(commit="c0ffee1", data_md5="data-v1")
        server = start_server(tmp_path / "serve", remote)
        try:
            _outage_then_recovery(tracking, remote, server, records[0])
        finally:
            stop_server(server)
    finally:
        mlflow.set_tracking_uri(previous)


def _outage_then_recovery(
    tracking: Tracking, remote: Registry, server: Server, record: dict[str, Any]
) -> None:
    def errors() -> float:
        return sample_value(scrape(server), REGISTRY_ERRORS, outcome="registry_error")

    assert server.client.get("/metadata").json()["model_version"] == "1"
    tracking.stop()
    wait_for(lambda: errors() >= 3, 60, "three failed registry polls")
    assert server.client.get("/readyz").status_code == 200
    answer = server.client.post(
        "/predict", content=json.dumps(record), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["model_version"] == "1"
    log = server.output.read_text(errors="replace")
    # once per outage and watched alias (champion, challenger), not per poll
    assert log.count("@champion failed") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]

    tracking.start()
    fresh = remote.register(commit="c0ffee2", data_md5="data-v2")
    wait_for(
        lambda: server.client.get("/metadata").json()["model_version"] == fresh,
        60,
        "the new champion after the tracking server came back",
    )
    assert "registry reachable again" in server.output.read_text(errors="replace")
    assert sample_value(scrape(server), REGISTRY_ERRORS, outcome="success") >= 2
