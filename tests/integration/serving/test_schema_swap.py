"""A champion that takes one more feature, hot-swapped under traffic on a real `bentoml serve`.

Version 1 is the session's model (the default spec); version 2 is trained on the same table
with one more numeric feature (`tenure_years`). Clients send both shapes throughout. With the
default `serve.schema_change: swap` no request gets a 5xx: the old shape is refused with a 422
naming the missing field once version 2 serves, and version 2 answers the new shape within the
reload interval (plus its load). With `refuse`, version 1 keeps serving, and the refusal is one
log line and one count of `flywheel_model_reloads_total{outcome="schema_refused"}`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.serving.conftest import (
    MODEL_NAME,
    Registry,
    Server,
    _train_and_log,
    start_server,
    stop_server,
    wait_for,
)
from tests.integration.serving.test_service import sample_value, scrape

pytestmark = pytest.mark.slow

EXTRA = "tenure_years"
RELOAD_INTERVAL_S = 1.0
CLIENTS = 4
# Registry poll, then download, digest check and unpickling of version 2 (seconds on this
# 2-core machine; measured figures are printed by the test).
LOAD_ALLOWANCE_S = 20.0


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The model trained with one more feature (its files are registered into each store)."""
    return _train_and_log(tmp_path_factory.mktemp("wide-model"), extra_feature=EXTRA)


def fresh_registry(tmp: Path, narrow: Registry) -> Registry:
    """A store of its own whose champion, version 1, is the session's (narrow) model."""
    reg = Registry(uri=f"sqlite:///{tmp / 'mlflow.db'}", name=MODEL_NAME,
                   model_source=narrow.artifacts, artifacts=narrow.artifacts)
    reg.client().search_experiments()  # create the store before the server reads it
    reg.register(commit="c0ffee1", data_md5="data-v1")
    return reg


@dataclass
class Answer:
    sent: float
    received: float
    shape: str  # "narrow" (version 1's fields) or "wide" (version 2's)
    status: int
    body: Any


def widen(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, EXTRA: float(int(record["tenure"]) // 12)}


class Clients:
    """A few threads, each alternating both shapes until stopped (bounded by `stop`)."""

    def __init__(self, server: Server, records: list[dict[str, Any]]) -> None:
        self.server = server
        self.records = records
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _send(self, worker: int) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            i = worker
            while not self._stop.is_set():
                shape = "wide" if i % 2 else "narrow"
                record = self.records[i % len(self.records)]
                body = widen(record) if shape == "wide" else record
                sent = time.monotonic()
                response = client.post("/predict", json=body)
                self.answers.append(Answer(sent, time.monotonic(), shape, response.status_code,
                                           response.json()))
                i += CLIENTS

    def count(self, shape: str, status: int, version: str | None = None) -> int:
        return sum(1 for a in list(self.answers) if a.shape == shape and a.status == status
                   and (version is None or a.body[0]["model_version"] == version))


@pytest.fixture(scope="module")
def swapping(tmp_path_factory: pytest.TempPathFactory,
             registry: Registry) -> Iterator[tuple[Server, Registry]]:
    tmp = tmp_path_factory.mktemp("schema-swap")
    own = fresh_registry(tmp, registry)
    running = start_server(tmp / "server", own, reload_interval_s=RELOAD_INTERVAL_S)
    yield running, own
    stop_server(running)


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory,
             registry: Registry) -> Iterator[tuple[Server, Registry]]:
    tmp = tmp_path_factory.mktemp("schema-refuse")
    own = fresh_registry(tmp, registry)
    running = start_server(tmp / "server", own, reload_interval_s=RELOAD_INTERVAL_S,
                           schema_change="refuse")
    yield running, own
    stop_server(running)


def test_a_wider_champion_is_swapped_in_with_its_schema_and_nothing_5xx(
        swapping: tuple[Server, Registry], wide: Registry,
        records: list[dict[str, Any]]) -> None:
    server, own = swapping
    with Clients(server, records) as clients:
        wait_for(lambda: clients.count("narrow", 200, "1") >= 20
                 and clients.count("wide", 422) >= 20, 60, "both shapes answered on version 1")
        moved = time.monotonic()
        own.register(commit="c0ffee2", data_md5="data-v2", source=wide.artifacts)
        wait_for(lambda: clients.count("wide", 200, "2") >= 1, 60, "version 2's first answer")
        first_v2 = min(a.received for a in list(clients.answers)
                       if a.status == 200 and a.body[0]["model_version"] == "2")
        wait_for(lambda: sum(1 for a in list(clients.answers) if a.sent > first_v2) >= 80, 60,
                 "traffic after the swap")
    answers = clients.answers
    print(f"\n{len(answers)} answers; version 2 answered the new shape "
          f"{first_v2 - moved:.2f} s after the alias moved")
    assert not [a for a in answers if a.status >= 500], "a 5xx during the swap"
    assert first_v2 - moved <= RELOAD_INTERVAL_S + LOAD_ALLOWANCE_S
    before = [a for a in answers if a.received < moved]
    after = [a for a in answers if a.sent > first_v2]
    assert {(a.shape, a.status) for a in before} == {("narrow", 200), ("wide", 422)}
    assert all(EXTRA in str(a.body) for a in before if a.status == 422)  # the unknown field
    assert {(a.shape, a.status) for a in after} == {("narrow", 422), ("wide", 200)}
    for refused in (a for a in after if a.status == 422):
        assert f"field '{EXTRA}'" in refused.body["error"], refused.body
        assert refused.body["detail"][0]["type"] == "missing", refused.body
    assert {a.body[0]["model_version"] for a in after if a.status == 200} == {"2"}

    doc = server.client.get("/docs.json").json()
    assert EXTRA in doc["components"]["schemas"]["Record"]["properties"]
    meta = server.client.get("/metadata").json()
    assert meta["model_version"] == "2" and EXTRA in meta["features"]
    assert sample_value(scrape(server), "flywheel_model_reloads_total", outcome="success") == 2
    assert f"changes the request schema (added: {EXTRA})" in server.logs()

    def logged_with_extra() -> bool:
        import pyarrow.parquet as pq

        tables = [pq.read_table(path) for path in sorted(server.log_dir.glob("*.parquet"))]
        return any(EXTRA in t.column_names and "2" in t.column("model_version").to_pylist()
                   for t in tables)

    wait_for(logged_with_extra, 15, "version 2's rows in the inference log with its new column")


def test_under_refuse_the_old_champion_keeps_serving_with_one_line_and_a_count(
        refusing: tuple[Server, Registry], wide: Registry,
        records: list[dict[str, Any]]) -> None:
    server, own = refusing
    own.register(commit="c0ffee2", data_md5="data-v2", source=wide.artifacts)
    wait_for(lambda: sample_value(scrape(server), "flywheel_model_reloads_total",
                                  outcome="schema_refused") >= 1, 60, "the refusal")
    time.sleep(4 * RELOAD_INTERVAL_S)  # later polls neither retry nor log it again
    assert sample_value(scrape(server), "flywheel_model_reloads_total",
                        outcome="schema_refused") == 1
    lines = [line for line in server.output.read_text(errors="replace").splitlines()
             if "serve.schema_change is 'refuse'" in line]
    assert len(lines) == 1, lines
    assert "version 2" in lines[0] and f"added: {EXTRA}" in lines[0] and "keeping 1" in lines[0]
    narrow = server.client.post("/predict", json=records[:3])
    assert narrow.status_code == 200 and {a["model_version"] for a in narrow.json()} == {"1"}
    wider = server.client.post("/predict", json=widen(records[0]))
    assert wider.status_code == 422 and EXTRA in wider.json()["error"]
    assert server.client.get("/metadata").json()["model_version"] == "1"
    doc = server.client.get("/docs.json").json()
    assert EXTRA not in doc["components"]["schemas"]["Record"]["properties"]
