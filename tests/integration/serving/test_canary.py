"""Canary on real processes: `bentoml serve`, Prometheus evaluating infra/'s rules, the
controller flow against the session's Prefect server, and the CLI as a user types it.

One registry, one server and one Prometheus for the module; tests run in file order: a good
canary (no traffic before a lease, traffic under one, none once it lapsed, then promoted by the
controller with no human step), then a broken one and a slow one rolled back. Clients send
requests all along; every answer is checked.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.alerting import api, start
from tests.conftest import REPO, require_program, run_cli
from tests.integration.serving.conftest import (
    ROOT,
    Registry,
    Server,
    champion_registry,
    free_port,
    start_server,
    stop_server,
    wait_for,
)
from tests.integration.serving.test_service import sample_value, scrape
from tests.integration.serving.test_shadow import _broken_copy

pytestmark = pytest.mark.slow

WAIT_S = 90
CANARY = {"steps": [0.2, 0.5, 1.0], "step_seconds": 3, "eval_seconds": 1, "lease_seconds": 8,
          # Latency is judged on counts (flywheel.monitoring.canary_latency): a good canary's
          # few slow calls on a shared machine are no evidence, a 2x bound holds for it.
          "max_latency_ratio": 2.0, "max_error_excess": 0.01, "min_records": 50}
SLOW_TREES = 1500  # a forest this large takes ~150 ms a call: several x the champion


@pytest.fixture(scope="module")
def canary_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return champion_registry(tmp_path_factory, "canary-registry")


@pytest.fixture(scope="module")
def canary_server(tmp_path_factory: pytest.TempPathFactory,
                  canary_registry: Registry) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("canary-server"), canary_registry)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, canary_server: Server) -> Iterator[str]:
    """Prometheus scraping the server every second, with the shipped recording rules."""
    tmp = tmp_path_factory.mktemp("canary-prometheus")
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(REPO / "infra/prometheus/rules/recording.yml")],
              "scrape_configs": [{"job_name": "flywheel-service", "static_configs": [
                  {"targets": [canary_server.url.removeprefix("http://")]}]}]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{free_port()}"
    with ExitStack() as stack:
        start(stack, "prometheus", [require_program("prometheus"),
                                    f"--config.file={tmp / 'prometheus.yml'}",
                                    f"--web.listen-address={url.removeprefix('http://')}",
                                    f"--storage.tsdb.path={tmp / 'data'}"],
              cwd=tmp, env={}, url=url, probe="/-/ready")
        yield url


@pytest.fixture(scope="module")
def cli(canary_server: Server, canary_registry: Registry, prometheus: str,
        prefect_server: str) -> Any:
    """`flywheel ARGS` with the server's params plus a fast canary section."""
    params = yaml.safe_load((canary_server.home.parent / "params.yaml").read_text())
    params["canary"].update(CANARY, prometheus_url=prometheus)
    path = canary_server.home.parent / "canary-params.yaml"
    path.write_text(yaml.safe_dump(params))

    def run(*args: str) -> Any:
        return run_cli(ROOT, *args, FLYWHEEL_PARAMS_FILE=str(path),
                       FLYWHEEL_TRACKING_URI=canary_registry.uri, PREFECT_API_URL=prefect_server)
    return run


class Clients:
    """One client posting records in a loop; counts answers by status and answering version."""

    def __init__(self, server: Server, records: list[dict[str, Any]]) -> None:
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self._server, self._records = server, records
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Clients:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self._server.url, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                answer = client.post("/predict", json=self._records[i % len(self._records)])
                self.statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    self.versions[answer.json()[0]["model_version"]] += 1
                i += 1


def _aliases(registry: Registry) -> dict[str, str]:
    return {k: str(v) for k, v in registry.client().get_registered_model(registry.name)
            .aliases.items()}


def _answering(server: Server, records: list[dict[str, Any]], n: int = 20) -> set[str]:
    return {server.client.post("/predict", json=r).json()[0]["model_version"]
            for r in records[:n]}


def test_a_good_canary_gets_traffic_only_under_a_lease_and_becomes_champion(
        canary_server: Server, canary_registry: Registry, cli: Any,
        records: list[dict[str, Any]]) -> None:
    from flywheel.registry.canary import read_progress, renewed, write

    version = canary_registry.register(commit="c0ffee2", data_md5="data-v1", champion=False)
    started = cli("canary", "start", "--version", version, "--force", "--reason", "test")
    assert started.returncode == 0, started.stderr
    wait_for(lambda: sample_value(scrape(canary_server), "flywheel_canary_reloads_total",
                                  outcome="success") >= 1, WAIT_S, "the canary to load")
    assert _answering(canary_server, records) == {"1"}  # loaded, but no controller yet: 0%
    client = canary_registry.client()  # one renewal, as a controller that then dies
    write(client, canary_registry.name, renewed(read_progress(client, canary_registry.name)))
    wait_for(lambda: version in _answering(canary_server, records), WAIT_S,
             "the renewed lease to route some requests to the canary")
    wait_for(lambda: _answering(canary_server, records) == {"1"}, WAIT_S,
             "the lapsed lease to route everything to the champion")
    with Clients(canary_server, records) as clients:
        done = cli("canary", "run")  # a controller again: carries on from the recorded step
        wait_for(lambda: _answering(canary_server, records) == {version}, WAIT_S,
                 "the service to swap in the promoted canary")
    assert done.returncode == 0 and "canary promoted" in done.stdout, done.stdout + done.stderr
    assert _aliases(canary_registry) == {"champion": version, "previous": "1"}
    assert set(clients.statuses) == {200}
    assert clients.versions["1"] > 0 and clients.versions[version] > 0
    wait_for(lambda: _logged_rows(canary_server, "canary"), WAIT_S,
             "the canary's answers in the inference log under role canary")
    status = cli("canary", "status", "--json")
    assert '"state": "promoted"' in status.stdout


def test_a_broken_canary_is_rolled_back_within_two_evaluations_and_clients_see_no_errors(
        canary_server: Server, canary_registry: Registry, cli: Any,
        records: list[dict[str, Any]], tmp_path: Path) -> None:
    source = _broken_copy(canary_registry, tmp_path / "broken")
    version, reason, clients, done = _rolled_back_canary(
        canary_server, canary_registry, cli, records, source, "broken")
    assert f"canary {version} of {canary_registry.name} rolled back" in " ".join(
        done.stdout.split())  # the log line
    assert "canary errors" in reason and "max_error_excess" in reason
    # Within two evaluations, counted from the first that saw canary traffic: the controller's
    # own count is the clock (wall time stretches on a loaded machine, evaluations do not).
    seen = int(reason.rsplit("evaluation ", 1)[1].split(" ", 1)[0])
    print(f"broken canary rolled back at evaluation {seen} with canary traffic: {reason}")
    assert 1 <= seen <= 2, reason
    errors = sum(n for code, n in clients.statuses.items() if code != 200)
    assert errors < 0.01 * sum(clients.statuses.values()), clients.statuses
    assert sample_value(scrape(canary_server), "flywheel_routed_errors_total",
                        role="canary", model_version=version) > 0
    event = wait_for(lambda: _events("flywheel.canary.rolled_back"), WAIT_S, "the Prefect event")
    assert event[0]["payload"]["version"] == version


def test_a_slow_canary_is_rolled_back_within_two_evaluations_on_its_slow_calls(
        canary_server: Server, canary_registry: Registry, cli: Any,
        records: list[dict[str, Any]], tmp_path: Path) -> None:
    source = _slow_copy(canary_registry, records, tmp_path / "slow")
    version, reason, clients, _ = _rolled_back_canary(
        canary_server, canary_registry, cli, records, source, "slow")
    assert "canary calls slower than" in reason and "max_latency_ratio" in reason, reason
    seen = int(reason.rsplit("evaluation ", 1)[1].split(" ", 1)[0])
    print(f"slow canary rolled back at evaluation {seen} with canary traffic: {reason}")
    assert 1 <= seen <= 2, reason
    assert set(clients.statuses) == {200}, clients.statuses  # slower answers, never errors
    assert clients.versions[version] > 0  # it did answer before the rollback


def _rolled_back_canary(server: Server, registry: Registry, cli: Any,
                        records: list[dict[str, Any]], source: Path,
                        commit: str) -> tuple[str, str, Clients, Any]:
    """Register `source` as a non-champion version, force it into a canary and run the
    controller under client traffic until it ends; asserts it ended rolled back with the
    champion unchanged and the alias gone. Returns the version, the recorded reason, the
    clients and the controller's finished process."""
    version = registry.register(commit=commit, data_md5="data-v1", source=source.as_uri(),
                                champion=False)
    champion_before = _aliases(registry)["champion"]
    started = cli("canary", "start", "--version", version, "--force", "--reason", "test")
    assert started.returncode == 0, started.stderr
    with Clients(server, records) as clients:
        done = cli("canary", "run")
    assert done.returncode == 0 and "canary rolled_back" in done.stdout, done.stdout + done.stderr
    assert _aliases(registry)["champion"] == champion_before
    assert "canary" not in _aliases(registry)
    reason = registry.client().get_model_version(registry.name, version).tags[
        "flywheel.canary_rolled_back_reason"]
    return version, reason, clients, done


def _slow_copy(registry: Registry, records: list[dict[str, Any]], folder: Path) -> Path:
    """The trained model's files with its estimator swapped for a forest of SLOW_TREES trees
    fitted to the champion's own answers: the same kind of answers, each call several times
    slower. Registered and signed like any version."""
    import pickle
    import shutil

    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    from flywheel.data.io import feature_frame

    shutil.copytree(Path(registry.artifacts.removeprefix("file://")), folder)
    (model_file,) = folder.rglob("model.pkl")
    model = pickle.loads(model_file.read_bytes())
    matrix = model._compiled.transform(feature_frame(model.spec, pd.DataFrame(records)))
    answers = model.estimator.predict(matrix)
    assert len(set(answers)) == 2, "the sample records must draw both answers"
    model.estimator = RandomForestClassifier(n_estimators=SLOW_TREES, max_depth=4, n_jobs=1,
                                             random_state=0).fit(matrix, answers)
    model_file.write_bytes(pickle.dumps(model))
    return folder


def _logged_rows(server: Server, role: str) -> int:
    from flywheel.monitoring.logread import read_log

    table = read_log(server.log_dir, ["request_id"], role=role)
    return 0 if table is None else table.num_rows


def _events(name: str) -> list[Any]:
    from prefect.events.filters import EventFilter, EventNameFilter

    found = api(lambda c: c.request("POST", "/events/filter", json={
        "filter": EventFilter(event=EventNameFilter(name=[name])).model_dump(mode="json"),
        "limit": 10}))
    return list(found.json()["events"])
