"""Fixtures for the serving tests: a small real champion in a temp MLflow store, real servers.

The model is trained once per session (logistic regression on the default table) and registered
with the lineage tags the pipeline sets. Each server is a real `bentoml serve` on a free loopback
port with its own BENTOML_HOME (each serve wipes the Prometheus multiprocess folder there), its
own params file (short reload interval and log roll) and is always stopped by its fixture.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MODEL_NAME = "flywheel-churn-test"
SERVER_START_TIMEOUT_S = 120


@dataclass
class Registry:
    """A temp MLflow store holding one trained model, registrable as many versions."""

    uri: str
    name: str
    model_source: str = ""
    run_id: str = ""
    artifacts: str = ""  # where the trained model's files are, usable from another store

    def client(self) -> Any:
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def register(self, commit: str, data_md5: str, source: str | None = None,
                 champion: bool = True, verdict: str | None = None) -> str:
        """A new version of the same trained model (or of `source`), aliased champion; signed
        `verdict` (default: `promoted` for a champion, `registered` otherwise)."""
        client = self.client()
        try:
            client.get_registered_model(self.name)
        except Exception:
            client.create_registered_model(self.name)
        from flywheel.registry.integrity import DIGEST_TAG, digest_of
        from flywheel.registry.signing import PROMOTED, REGISTERED
        from flywheel.registry.vouch import sign

        sha256 = digest_of(source or self.model_source)
        version = client.create_model_version(
            self.name, source or self.model_source,
            run_id=(self.run_id or None) if source is None else None,
            tags={"flywheel.git_commit": commit, "flywheel.data_md5": data_md5,
                  "flywheel.candidate": "logreg", DIGEST_TAG: sha256})
        # Signed as the pipeline signs (the session's key: tests/conftest.py signing_key).
        sign(client, session_keyring(), self.name, version.version, sha256,
             verdict or (PROMOTED if champion else REGISTERED))
        if champion:
            client.set_registered_model_alias(self.name, "champion", version.version)
        return str(version.version)


def session_keyring() -> Any:
    """The keyring every process of the session verifies with (FLYWHEEL_SIGNING_KEY_FILE)."""
    from flywheel.registry.signing import load_keyring

    return load_keyring(Path(os.environ["FLYWHEEL_SIGNING_KEY_FILE"]))


def _train_and_log(store: Path, shuffle_seed: int | None = None,
                   extra_feature: str | None = None) -> Registry:
    """Logistic regression on the default table, logged as the pipeline logs it. With
    `shuffle_seed` the labels are permuted first: a champion any real retrain beats. With
    `extra_feature` the table and spec get one more numeric feature (tenure in whole years,
    0 to 10): a model with another request schema."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from flywheel.data.io import feature_frame, read_table, target_vector
    from flywheel.data.spec import load_spec
    from flywheel.features.transformer import fit_transformer
    from flywheel.model import TabularModel, save_model
    from flywheel.registry.pyfunc import log_pyfunc

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    spec = load_spec(ROOT / params["data"]["spec"])
    data_path = ROOT / spec.path
    if not data_path.is_file():
        from flywheel.data.materialize import ensure_raw_data

        ensure_raw_data(ROOT)
    raw = read_table(data_path)
    if extra_feature is not None:
        spec, raw = _with_years(spec, raw, extra_feature)
    features = feature_frame(spec, raw)
    transformer = fit_transformer(spec, features)
    labels = target_vector(spec, raw)
    if shuffle_seed is not None:
        labels = np.random.default_rng(shuffle_seed).permutation(labels)
    estimator = LogisticRegression(max_iter=500).fit(transformer.transform(features), labels)
    model = TabularModel(spec=spec, transformer=transformer, estimator=estimator,
                         candidate="logreg", threshold=0.5)
    model_file = store / "model.pkl"
    save_model(model, model_file)
    metrics = {"test_roc_auc": 0.84, "test_pr_auc": 0.65, "test_f1": 0.6,
               "test_accuracy": 0.8, "test_log_loss": 0.42, "test_brier": 0.14}
    return log_in_store(store, MODEL_NAME, lambda: log_pyfunc(model, model_file, raw), metrics)


def log_in_store(store: Path, name: str, log: Callable[[], Any],
                 metrics: dict[str, float]) -> Registry:
    """`log()` (logging a pyfunc, returning its info) and `metrics` under one run of a fresh
    store in `store`: the Registry that can register it as `name`."""
    import mlflow

    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("serving-test",
                                          artifact_location=(store / "mlruns").as_uri())
    # The fluent API needs the global URI; put back what was there so other tests' MLflow
    # (and the MLFLOW_TRACKING_URI that set_tracking_uri exports) is left as it was.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            info = log()
            mlflow.log_metrics(metrics)
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  (None unsets it)
    artifacts = client.get_logged_model(info.model_id).artifact_location
    return Registry(uri=uri, name=name, model_source=artifacts,
                    run_id=run.info.run_id, artifacts=artifacts)


def _with_years(spec: Any, raw: Any, name: str) -> tuple[Any, Any]:
    from flywheel.data.spec import FeatureSpec

    extra = FeatureSpec(name=name, kind="numeric", min=0, max=10)
    raw = raw.assign(**{name: (raw["tenure"] // 12).astype("float64")})
    return spec.model_copy(update={"features": [*spec.features, extra]}), raw


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Champion version 1, trained from the default data and tagged with its lineage."""
    return champion_registry(tmp_path_factory, "registry")


def champion_registry(tmp_path_factory: pytest.TempPathFactory, folder: str) -> Registry:
    """A store of its own whose version 1, the model trained here, is champion."""
    reg = _train_and_log(tmp_path_factory.mktemp(folder))
    reg.register(commit="c0ffee1", data_md5="data-v1")
    return reg


@pytest.fixture(scope="session")
def empty_registry(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Registry:
    """A store with no champion; `register` (same trained model) makes one appear."""
    import mlflow

    store = tmp_path_factory.mktemp("empty-registry")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()  # create it
    return Registry(uri=uri, name=MODEL_NAME, model_source=registry.artifacts, run_id="",
                    artifacts=registry.artifacts)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    home: Path
    log_dir: Path  # the served model's own folder under FLYWHEEL_INFERENCE_LOG_DIR
    output: Path
    tokens_file: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def logs(self) -> str:
        return self.output.read_text(errors="replace")[-5000:]

    def auth(self, scope: str) -> dict[str, str]:
        """The Authorization header of a scope's local token (generated by the server)."""
        from flywheel.tokens import local_tokens

        return {"Authorization": f"Bearer {local_tokens(self.tokens_file)[scope]}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_params(path: Path, model_name: str, **serve: Any) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["promote"]["model_name"] = model_name
    params["serve"].update(serve)
    path.write_text(yaml.safe_dump(params))
    return path


def start_server(tmp: Path, registry: Registry, log_dir: Path | None = None,
                 wait_ready: bool = True, **serve: Any) -> Server:
    """`bentoml serve` on a free loopback port; waits (bounded) for /readyz or /livez."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    home = tmp / "bentoml-home"
    log_dir = log_dir or tmp / "inference-log"
    settings = dict(reload_interval_s=1, inference_log_roll_rows=50,
                    inference_log_roll_seconds=1)
    settings.update(serve)
    env = {
        **os.environ,
        "FLYWHEEL_ROOT": str(ROOT),
        "FLYWHEEL_PARAMS_FILE": str(write_params(tmp / "params.yaml", registry.name,
                                                 **settings)),
        "FLYWHEEL_TRACKING_URI": registry.uri,
        "MLFLOW_TRACKING_URI": registry.uri,
        "FLYWHEEL_INFERENCE_LOG_DIR": str(log_dir),
        "BENTOML_HOME": str(home),
        # The local feedback/admin tokens, generated at start, outside the repository.
        "FLYWHEEL_TOKENS_FILE": str(tmp / ".flywheel" / "tokens.json"),
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "true",
    }
    output = tmp / "server.log"
    bentoml = Path(sys.executable).with_name("bentoml")
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [str(bentoml), "serve", "flywheel.serving.service:Flywheel", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=tmp, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(url=f"http://127.0.0.1:{port}", process=process, home=home,
                    log_dir=log_dir / registry.name, output=output,
                    tokens_file=Path(env["FLYWHEEL_TOKENS_FILE"]))
    probe = "/readyz" if wait_ready else "/livez"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if server.client.get(probe, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    pytest.fail(f"server did not answer {probe} within {SERVER_START_TIMEOUT_S} s:\n"
                f"{server.logs()}")


def stop_server(server: Server) -> None:
    """Stop the serve process group this fixture started (arbiter and its workers)."""
    server.client.close()
    stop_process(server.process)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the process group a test started (start_new_session), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("server"), registry)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def cold_server(tmp_path_factory: pytest.TempPathFactory,
                empty_registry: Registry) -> Iterator[Server]:
    """No champion at start; its inference log folder is a file, so every write fails."""
    tmp = tmp_path_factory.mktemp("cold-server")
    blocker = tmp / "not-a-folder"
    blocker.write_text("the inference log cannot be written below a file\n")
    running = start_server(tmp, empty_registry, log_dir=blocker / "log", wait_ready=False)
    yield running
    stop_server(running)


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `check` until it returns something truthy, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="session")
def records() -> list[dict[str, Any]]:
    return sample_records()


def sample_records() -> list[dict[str, Any]]:
    """Valid request records: real rows of the default table, as JSON-ready dicts."""
    import math

    from flywheel.data.io import feature_frame, read_table
    from flywheel.data.spec import load_spec

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    spec = load_spec(ROOT / params["data"]["spec"])
    frame = feature_frame(spec, read_table(ROOT / spec.path).head(200))
    rows = frame.to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in rows]
