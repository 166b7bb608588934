"""Shadow on a real `bentoml serve`: the `challenger` alias scores every request off the
response path, and clients never see it.

One server and one registry of this module's own (the session registry's champion is left
alone); tests run in file order: answers without a challenger first, then a good challenger,
its process killed mid-traffic, a broken one, an unsigned one, and the alias removed.
"""

from __future__ import annotations

import json
import pickle
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sklearn.linear_model import LogisticRegression

from tests.conftest import run_cli
from tests.integration.serving.conftest import (
    ROOT,
    Registry,
    Server,
    _train_and_log,
    start_server,
    stop_server,
    wait_for,
)
from tests.integration.serving.test_service import sample_value, scrape

pytestmark = pytest.mark.slow

RELOAD_WAIT_S = 60
# A new challenger process starts Python, imports and loads the model: seconds on a quiet
# machine, over a minute measured on a 2-core one at a load average of 17.
RESTART_WAIT_S = 240
CHILD_MODULE = "flywheel.serving.shadow_child"  # the challenger's process, by its command line


@pytest.fixture(scope="module")
def shadow_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    reg = _train_and_log(tmp_path_factory.mktemp("shadow-registry"))
    reg.register(commit="c0ffee1", data_md5="data-v1")
    return reg


@pytest.fixture(scope="module")
def shadow_server(tmp_path_factory: pytest.TempPathFactory,
                  shadow_registry: Registry) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("shadow-server"), shadow_registry,
                           shadow_sample_rate=1.0)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def bodies(records: list[dict[str, Any]]) -> list[bytes]:
    """The same requests every time: single records and one list of five."""
    return [json.dumps(r).encode() for r in records[:12]] + [json.dumps(records[20:25]).encode()]


def _answers(server: Server, bodies: list[bytes]) -> tuple[list[bytes], list[str]]:
    """Each answer's exact bytes (all must be 200) and its request id."""
    contents, ids = [], []
    for body in bodies:
        response = server.client.post("/predict", content=body,
                                      headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text
        contents.append(response.content)
        ids.append(response.headers["x-request-id"])
    return contents, ids


def _cli(server: Server, registry: Registry, *args: str, **env: str) -> Any:
    """`flywheel ARGS` for this server's registry, params and inference log."""
    return run_cli(ROOT, *args, FLYWHEEL_PARAMS_FILE=str(server.home.parent / "params.yaml"),
                   FLYWHEEL_TRACKING_URI=registry.uri,
                   FLYWHEEL_INFERENCE_LOG_DIR=str(server.log_dir.parent), **env)


def _set_challenger(registry: Registry, server: Server, version: str) -> None:
    registry.client().set_registered_model_alias(registry.name, "challenger", version)
    _wait_loaded(server, version)


def _wait_loaded(server: Server, version: str) -> None:
    wait_for(lambda: sample_value(scrape(server), "flywheel_shadow_challenger_info",
                                  model_version=version) == 1, RELOAD_WAIT_S,
             f"version {version} to shadow")


def _shadowed(server: Server, version: str) -> float:
    return sample_value(scrape(server), "flywheel_shadow_requests_total",
                        challenger_version=version)


def _broken_copy(registry: Registry, folder: Path) -> Path:
    """The trained model's files with an estimator that was never fitted: it loads, every
    predict raises (NotFittedError). Registered and signed like any version."""
    shutil.copytree(Path(registry.artifacts.removeprefix("file://")), folder)
    (model_file,) = folder.rglob("model.pkl")
    model = pickle.loads(model_file.read_bytes())
    model.estimator = LogisticRegression()
    model_file.write_bytes(pickle.dumps(model))
    return folder


@pytest.fixture(scope="module")
def champion_only(shadow_server: Server, bodies: list[bytes]) -> list[bytes]:
    return _answers(shadow_server, bodies)[0]


def test_without_a_challenger_nothing_is_shadowed(shadow_server: Server,
                                                  champion_only: list[bytes]) -> None:
    families = scrape(shadow_server)
    assert "flywheel_shadow_dropped_requests" in families
    assert sample_value(families, "flywheel_shadow_requests_total") == 0


def test_a_challenger_scores_the_same_requests_and_clients_see_only_the_champion(
        shadow_server: Server, shadow_registry: Registry, bodies: list[bytes],
        champion_only: list[bytes], tmp_path: Path) -> None:
    version = shadow_registry.register(commit="c0ffee2", data_md5="data-v1", champion=False)
    started = _cli(shadow_server, shadow_registry, "shadow", "start", "--version", version)
    assert started.returncode == 0, started.stderr
    _wait_loaded(shadow_server, version)
    contents, ids = _answers(shadow_server, bodies)
    assert contents == champion_only  # byte for byte
    wait_for(lambda: _shadowed(shadow_server, version) >= len(bodies), RELOAD_WAIT_S,
             "every request to be shadowed")
    families = scrape(shadow_server)
    records = sample_value(families, "flywheel_shadow_records_total", challenger_version=version)
    assert records == len(bodies) - 1 + 5
    # The same trained model: every record agrees, at distance 0.
    assert sample_value(families, "flywheel_shadow_agreeing_records_total",
                        challenger_version=version) == records
    assert sample_value(families, "flywheel_shadow_score_distance_sum",
                        challenger_version=version) == pytest.approx(0, abs=1e-9)
    assert sample_value(families, "flywheel_shadow_latency_seconds_count",
                        challenger_version=version) == len(bodies)
    assert sample_value(families, "flywheel_shadow_errors_total") == 0

    def report() -> Any:
        result = _cli(shadow_server, shadow_registry, "shadow", "report", "--json",
                      FLYWHEEL_FEEDBACK_DIR=str(tmp_path / "feedback"))
        assert result.returncode == 0, result.stderr
        found = json.loads(result.stdout)
        seen = found["challengers"].get(version, {})
        return found if seen.get("requests", 0) >= len(bodies) else None

    found = wait_for(report, RELOAD_WAIT_S, "the log to hold the challenger's rows")
    assert (found["champion"], found["challenger"]) == ("1", version)
    compared = found["challengers"][version]
    assert compared["agreement_rate"] == 1.0 and compared["errors"] == 0
    assert compared["records"] == len(bodies) - 1 + 5
    assert set(ids) <= _logged_ids(shadow_server, "challenger")


def _challenger_processes(server: Server) -> list[psutil.Process]:
    found = []
    for process in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if CHILD_MODULE in " ".join(process.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def _traffic(server: Server, bodies: list[bytes], expected: list[bytes],
             stop: threading.Event, seen: list[bool]) -> None:
    """Send the bodies over and over until `stop`; per answer, whether it was the champion's."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while not stop.is_set():
            for body, answer in zip(bodies, expected, strict=True):
                response = client.post("/predict", content=body,
                                       headers={"content-type": "application/json"})
                seen.append(response.status_code == 200 and response.content == answer)


def test_a_killed_challenger_process_costs_clients_nothing_and_comes_back(
        shadow_server: Server, shadow_registry: Registry, bodies: list[bytes],
        champion_only: list[bytes]) -> None:
    version = str(shadow_registry.client().get_model_version_by_alias(
        shadow_registry.name, "challenger").version)
    (child,) = _challenger_processes(shadow_server)
    stop, seen = threading.Event(), list[bool]()
    sender = threading.Thread(target=_traffic,
                              args=(shadow_server, bodies, champion_only, stop, seen))
    sender.start()
    try:
        wait_for(lambda: len(seen) >= len(bodies), RELOAD_WAIT_S, "traffic to flow")
        child.kill()  # SIGKILL: what a native crash in the challenger's library looks like
        wait_for(lambda: sample_value(scrape(shadow_server),
                                      "flywheel_shadow_process_crashes_total") == 1,
                 RELOAD_WAIT_S, "the crash to be counted")
        wait_for(lambda: [p for p in _challenger_processes(shadow_server) if p.pid != child.pid],
                 RELOAD_WAIT_S, "a new challenger process")
        wait_for(lambda: sample_value(scrape(shadow_server), "flywheel_shadow_challenger_info",
                                      model_version=version) == 1, RESTART_WAIT_S,
                 "the new process to load the challenger")
        resumed = _shadowed(shadow_server, version)
        wait_for(lambda: _shadowed(shadow_server, version) > resumed, RESTART_WAIT_S,
                 "shadowing to resume")
    finally:
        stop.set()
        sender.join(60)
    assert len(seen) > len(bodies) and all(seen)  # every answer the champion's, byte for byte


def _logged_ids(server: Server, role: str) -> set[str]:
    from flywheel.monitoring.logread import read_log

    table = read_log(server.log_dir, ["request_id"], role=role)
    return set() if table is None else {str(v) for v in table.column(0).to_pylist()}


def test_a_broken_challenger_costs_clients_nothing_and_is_counted(
        shadow_server: Server, shadow_registry: Registry, bodies: list[bytes],
        champion_only: list[bytes], tmp_path: Path) -> None:
    source = _broken_copy(shadow_registry, tmp_path / "broken")
    version = shadow_registry.register(commit="broken", data_md5="data-v1",
                                       source=source.as_uri(), champion=False)
    _set_challenger(shadow_registry, shadow_server, version)
    contents, _ = _answers(shadow_server, bodies)
    assert contents == champion_only
    wait_for(lambda: sample_value(scrape(shadow_server), "flywheel_shadow_errors_total",
                                  challenger_version=version, reason="predict") >= len(bodies),
             RELOAD_WAIT_S, "the challenger's errors to be counted")


def test_start_names_a_missing_version_in_one_line(shadow_server: Server,
                                                  shadow_registry: Registry) -> None:
    result = _cli(shadow_server, shadow_registry, "shadow", "start", "--version", "999")
    assert result.returncode == 5
    assert "no version '999'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unsigned_challenger_is_refused(shadow_server: Server,
                                           shadow_registry: Registry) -> None:
    from flywheel.registry.integrity import DIGEST_TAG, digest_of

    client = shadow_registry.client()
    unsigned = client.create_model_version(
        shadow_registry.name, shadow_registry.model_source,
        tags={DIGEST_TAG: digest_of(shadow_registry.model_source)}).version
    client.set_registered_model_alias(shadow_registry.name, "challenger", unsigned)
    wait_for(lambda: sample_value(scrape(shadow_server), "flywheel_shadow_reloads_total",
                                  outcome="signature_refused") >= 1, RELOAD_WAIT_S,
             "the unsigned challenger to be refused")
    assert sample_value(scrape(shadow_server), "flywheel_shadow_challenger_info",
                        model_version=str(unsigned)) == 0


def test_removing_the_alias_stops_shadowing(shadow_server: Server, shadow_registry: Registry,
                                            bodies: list[bytes],
                                            champion_only: list[bytes]) -> None:
    stopped = _cli(shadow_server, shadow_registry, "shadow", "stop")
    assert stopped.returncode == 0 and "removed" in stopped.stdout, stopped.stderr
    wait_for(lambda: sample_value(scrape(shadow_server), "flywheel_shadow_reloads_total",
                                  outcome="removed") >= 1, RELOAD_WAIT_S, "the alias's removal")
    before = sample_value(scrape(shadow_server), "flywheel_shadow_requests_total")
    contents, _ = _answers(shadow_server, bodies)
    assert contents == champion_only
    assert sample_value(scrape(shadow_server), "flywheel_shadow_requests_total") == before
