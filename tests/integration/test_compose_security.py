"""Compose's MLflow requires a login, and every service that reads a secret file can read it.

No Docker engine runs here: the wiring is read from compose.yaml, and MLflow's basic-auth app
runs for real on loopback with the shipped `mlflow-auth.ini` (only its database moved to a
temporary folder) and the account variables compose passes it.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.serving.conftest import free_port, stop_process, wait_for

COMPOSE_DIR = REPO / "infra/compose"
USER, PASSWORD = "flywheel", "s3cret-for-the-test"
SEARCH = "/api/2.0/mlflow/registered-models/search"


def services() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())["services"]


def test_every_mlflow_client_logs_in_and_the_server_requires_it() -> None:
    found = services()
    clients = [n for n, s in found.items()
               if s.get("environment", {}).get("FLYWHEEL_TRACKING_URI") == "http://mlflow:5000"]
    assert {"prefect-worker", "flywheel"} <= set(clients)
    for name in clients:
        env = found[name]["environment"]
        assert env["MLFLOW_TRACKING_USERNAME"].startswith("${MLFLOW_TRACKING_USERNAME:?"), name
        assert env["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_TRACKING_PASSWORD:?"), name
    mlflow = found["mlflow"]
    command = mlflow["command"]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    env = mlflow["environment"]
    assert f"./mlflow-auth.ini:{env['MLFLOW_AUTH_CONFIG_PATH']}:ro" in mlflow["volumes"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_TRACKING_PASSWORD:?")
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_FLASK_SERVER_SECRET_KEY:?")


def test_every_reader_of_a_secret_file_joins_the_secrets_group() -> None:
    """File secrets keep their host owner and mode (0440, group SECRETS_GID): a service reads
    one only through that group, whatever user its image runs as."""
    readers = {n: s for n, s in services().items() if s.get("secrets")}
    assert set(readers) == {"prefect-worker", "flywheel", "alert-receiver", "alertmanager"}
    for name, service in readers.items():
        assert service.get("group_add") == ["${SECRETS_GID:?set SECRETS_GID in infra/compose/.env}"
                                            ], name


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server --app-name basic-auth` as compose starts it, on SQLite and loopback."""
    tmp = tmp_path_factory.mktemp("mlflow-auth")
    shipped = (COMPOSE_DIR / "mlflow-auth.ini").read_text()
    assert "sqlite:////srv/mlflow-auth/basic_auth.db" in shipped  # the volume compose mounts
    ini = tmp / "basic_auth.ini"
    ini.write_text(shipped.replace("/srv/mlflow-auth", str(tmp)))
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--app-name", "basic-auth",
         "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
         "--artifacts-destination", str(tmp / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(url + "/health") == 200, 180, "mlflow basic-auth server")
        yield url
    finally:
        stop_process(server)


def _status(url: str, user: str | None = None, password: str = "") -> int:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


@pytest.mark.slow
def test_mlflow_refuses_anonymous_and_wrong_logins(mlflow_url: str) -> None:
    assert _status(mlflow_url + SEARCH) == 401
    assert _status(mlflow_url + SEARCH, USER, "wrong") == 401
    assert _status(mlflow_url + SEARCH, USER, PASSWORD) == 200


@pytest.mark.slow
def test_a_client_with_the_env_account_writes_the_registry(
    mlflow_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the worker and the service do with MLFLOW_TRACKING_USERNAME/PASSWORD from .env."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    with pytest.raises(MlflowException):
        client.create_registered_model("anonymous-write")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    client.create_registered_model("churn-by-the-worker")
    assert client.get_registered_model("churn-by-the-worker").name == "churn-by-the-worker"
