"""The real service under `bentoml serve`: endpoints, bad input, metrics, log, hot swap.

Tests in this module share one server and run in file order; the hot-swap tests move the
champion, so they come last.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import require_program
from tests.integration.serving.conftest import ROOT, Registry, Server, wait_for

pytestmark = pytest.mark.slow


def scrape(server: Server) -> dict[str, list[Any]]:
    """Prometheus text from /metrics, parsed: family name -> samples."""
    response = server.client.get("/metrics")
    assert response.status_code == 200
    return {family.name: family.samples for family in text_string_to_metric_families(
        response.text)}


def sample_value(families: dict[str, list[Any]], name: str, **labels: str) -> float:
    samples = [s for family in families.values() for s in family
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(s.value for s in samples)


# --- endpoints -------------------------------------------------------------------------------

def test_probes_and_metadata(server: Server, registry: Registry) -> None:
    assert server.client.get("/livez").status_code == 200
    assert server.client.get("/readyz").status_code == 200
    meta = server.client.get("/metadata").json()
    assert meta["model_name"] == registry.name
    assert meta["model_version"] == "1"
    assert meta["git_commit"] == "c0ffee1"
    assert meta["data_md5"] == "data-v1"
    assert meta["trained_at"]
    assert meta["test_metrics"]["roc_auc"] == pytest.approx(0.84)
    assert set(meta["test_metrics"]) >= {"pr_auc", "f1", "brier"}


ISSUED: list[str] = []  # the request id the server gave the first prediction


def test_predict_one_record(server: Server, records: list[dict[str, Any]]) -> None:
    response = server.client.post("/predict", json=records[0],
                                  headers={"X-Request-ID": "req-one-1"})
    assert response.status_code == 200, response.text
    issued = response.headers["x-request-id"]  # the server's own id, never the client's
    assert issued != "req-one-1" and re.fullmatch(r"[0-9a-f]{32}", issued)
    ISSUED.append(issued)
    (answer,) = response.json()
    assert answer["prediction"] in {"Yes", "No"}
    assert 0.0 <= answer["probability"] <= 1.0
    assert (answer["model_version"], answer["git_commit"], answer["data_md5"]) == (
        "1", "c0ffee1", "data-v1")


def test_predict_list_matches_single(server: Server, records: list[dict[str, Any]]) -> None:
    batch = server.client.post("/predict", json=records[:20])
    assert batch.status_code == 200, batch.text
    answers = batch.json()
    assert len(answers) == 20
    single = server.client.post("/predict", json=records[3]).json()[0]
    assert answers[3]["probability"] == pytest.approx(single["probability"])


def test_a_list_longer_than_the_batch_size_is_scored_whole(
        server: Server, records: list[dict[str, Any]]) -> None:
    many = (records * 3)[:600]  # over serve.max_batch_size (256)
    response = server.client.post("/predict", json=many)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert len(answers) == 600
    assert answers[450]["probability"] == pytest.approx(
        server.client.post("/predict", json=many[450]).json()[0]["probability"])


def test_lone_requests_are_never_batched_even_after_a_burst(
        server: Server, records: list[dict[str, Any]]) -> None:
    """BentoML's adaptive batcher remembered bursts and held lone requests ~100 ms afterwards.
    Now a request with nothing else in flight is scored alone at once, before and after a
    burst, while concurrent requests still share model calls."""
    def calls_and_requests() -> tuple[float, float]:
        families = scrape(server)
        return (sample_value(families, "flywheel_batch_requests_count"),
                sample_value(families, "flywheel_batch_requests_sum"))

    def lone_requests() -> None:
        calls, answered = calls_and_requests()
        for record in records[:10]:
            assert server.client.post("/predict", json=record).status_code == 200
        assert calls_and_requests() == (calls + 10, answered + 10)  # one call per request

    def post(record: dict[str, Any]) -> int:
        return httpx.post(f"{server.url}/predict", json=record, timeout=60).status_code

    lone_requests()
    calls, answered = calls_and_requests()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert set(pool.map(post, records[:160])) == {200}
    burst_calls, burst_answered = calls_and_requests()
    assert burst_answered - answered == 160
    assert burst_calls - calls < 160  # some model calls answered several requests
    lone_requests()


def test_the_benchmarks_constant_rate_load_reaches_the_service(
        server: Server, records: list[dict[str, Any]], tmp_path: Path) -> None:
    """benchmarks/serving.py's open loop: wrk with constant_rate.lua sends valid requests and
    prints one JSON line whose counts the service's own metrics confirm."""
    import subprocess

    wrk = require_program("wrk")
    body = tmp_path / "one.json"
    body.write_text(json.dumps([records[0]]))
    before = sample_value(scrape(server), "flywheel_batch_requests_sum")
    done = subprocess.run(
        [wrk, "-t1", "-c8", "-d1s", "-s", str(ROOT / "benchmarks" / "constant_rate.lua"),
         f"{server.url}/predict", "--", "40", str(body)],
        capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["requests"] > 0 and result["non_2xx"] == 0 and result["socket_errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    answered = sample_value(scrape(server), "flywheel_batch_requests_sum") - before
    assert answered >= result["requests"]  # wrk does not count answers still in flight at its end


def test_openapi_shows_spec_schema(server: Server, records: list[dict[str, Any]]) -> None:
    doc = server.client.get("/docs.json").json()
    assert "/predict" in doc["paths"]
    record = doc["components"]["schemas"]["Record"]
    assert set(record["properties"]) == set(records[0])
    assert record["additionalProperties"] is False
    assert record["properties"]["tenure"]["maximum"] == 120


# --- bad input -------------------------------------------------------------------------------

def _with(record: dict[str, Any], **changes: Any) -> str:
    return json.dumps({**record, **changes}, allow_nan=True)


BAD_INPUTS = {  # (body, what the error must name, the status the README specifies)
    "missing field": (lambda r: json.dumps({k: v for k, v in r.items() if k != "tenure"}),
                      "tenure", 422),
    "unknown field": (lambda r: _with(r, favourite_colour="teal"), "favourite_colour", 422),
    "wrong type": (lambda r: _with(r, tenure="twelve"), "tenure", 422),
    "NaN": (lambda r: _with(r, monthly_charges=float("nan")), "monthly_charges", 422),
    "infinity": (lambda r: _with(r, monthly_charges=float("inf")), "monthly_charges", 422),
    "out of range": (lambda r: _with(r, tenure=1000), "tenure", 422),
    "below range": (lambda r: _with(r, monthly_charges=-5), "monthly_charges", 422),
    "null for a required field": (lambda r: _with(r, contract=None), "contract", 422),
    "empty list": (lambda r: "[]", "at least 1", 422),
    "not JSON": (lambda r: '{"tenure": 1,', "not valid JSON", 400),
    "JSON but not records": (lambda r: '"hello"', "list", 422),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_4xx_naming_the_problem(server: Server, records: list[dict[str, Any]],
                                              case: str) -> None:
    make, named, status = BAD_INPUTS[case]
    response = server.client.post("/predict", content=make(records[0]),
                                  headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert named in response.text
    assert "Traceback" not in response.text


def test_body_over_limit_is_413(server: Server, records: list[dict[str, Any]]) -> None:
    body = json.dumps(records * 3000)  # several MiB, over serve.max_body_bytes (1 MiB)
    response = server.client.post("/predict", content=body,
                                  headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["error"]


def test_unseen_category_is_accepted(server: Server, records: list[dict[str, Any]]) -> None:
    response = server.client.post("/predict", json={**records[0], "contract": "Five year"})
    assert response.status_code == 200, response.text


def test_good_requests_work_after_a_burst_of_bad_ones(server: Server,
                                                      records: list[dict[str, Any]]) -> None:
    bad = [make(records[0]) for make, *_ in BAD_INPUTS.values()] * 10

    def post(body: str) -> int:
        return httpx.post(f"{server.url}/predict", content=body, timeout=30,
                          headers={"Content-Type": "application/json"}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, bad))
    assert all(400 <= s < 500 for s in statuses), statuses
    good = server.client.post("/predict", json=records[:5])
    assert good.status_code == 200
    assert server.client.get("/readyz").status_code == 200


# --- metrics and inference log ---------------------------------------------------------------

def test_metrics_after_traffic(server: Server) -> None:
    families = scrape(server)
    assert sample_value(families, "flywheel_predictions_total", model_version="1") >= 27
    assert sample_value(families, "flywheel_positive_probability_count", model_version="1") >= 27
    for reason in ("missing_field", "unknown_field", "wrong_type", "not_finite",
                   "out_of_range", "empty", "not_json", "too_large"):
        assert sample_value(families, "flywheel_invalid_requests_total", reason=reason) >= 1, \
            reason
    assert sample_value(families, "flywheel_unseen_categories_total", feature="contract") >= 1
    assert sample_value(families, "flywheel_model_info", model_version="1") == 1
    assert sample_value(families, "flywheel_model_reloads_total", outcome="success") >= 1
    # The full collection that settled the loaded model (serving/heap.py) was timed.
    assert sample_value(families, "flywheel_gc_pause_seconds_count", generation="2") >= 1
    # BentoML's own request metrics are still there.
    assert any(name.startswith("bentoml_") for name in families)


def test_inference_log_is_written(server: Server) -> None:
    import pyarrow.parquet as pq

    def rows_logged() -> Any:
        files = sorted(server.log_dir.glob("*.parquet"))
        if not files:
            return None
        table = pq.read_table(files).to_pandas()  # type: ignore[arg-type]
        return (table,) if ISSUED[0] in set(table["request_id"]) else None

    (table,) = wait_for(rows_logged, 15, "the inference log to hold the first request")
    assert {"request_id", "time", "model_version", "tenure", "contract", "prediction",
            "probability"} <= set(table.columns)
    assert set(table["model_version"]) == {"1"}
    assert len(table) >= 20
    assert not list(server.log_dir.glob("*.tmp"))


# --- hot swap --------------------------------------------------------------------------------

def test_hot_swap_under_load(server: Server, registry: Registry,
                             records: list[dict[str, Any]]) -> None:
    stop = threading.Event()
    failures: list[str] = []
    answers: list[tuple[float, float, str]] = []  # (sent, received, model version)

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            i = worker
            while not stop.is_set():
                sent = time.monotonic()
                response = client.post("/predict", json=records[i % len(records)])
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                else:
                    answers.append((sent, time.monotonic(), response.json()[0]["model_version"]))
                i += 8

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(answers) > 50, 30, "traffic on version 1")
        registry.register(commit="c0ffee2", data_md5="data-v2")
        wait_for(lambda: any(v == "2" for *_, v in list(answers)), 30, "answers from version 2")
        after = len(answers)
        wait_for(lambda: len(answers) > after + 50, 30, "traffic after the swap")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not failures, failures[:5]
    assert answers[0][2] == "1"
    # The swap is atomic: once any client has received an answer from version 2, every request
    # sent after that moment is answered by version 2 (requests already in flight may not be).
    first_v2 = min(received for _, received, version in answers if version == "2")
    assert {version for sent, _, version in answers if sent > first_v2} == {"2"}
    meta = server.client.get("/metadata").json()
    assert (meta["model_version"], meta["git_commit"], meta["data_md5"]) == (
        "2", "c0ffee2", "data-v2")
    families = scrape(server)
    assert sample_value(families, "flywheel_model_info", model_version="2") == 1
    assert sample_value(families, "flywheel_model_info", model_version="1") == 0


def test_a_model_that_fails_to_load_keeps_the_old_one(server: Server, registry: Registry,
                                                     records: list[dict[str, Any]],
                                                     tmp_path: Any) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "MLmodel").write_text("this is not an MLflow model\n")
    good = registry.client().get_model_version_by_alias(registry.name, "champion").version
    registry.register(commit="bad", data_md5="bad", source=broken.as_uri())
    try:
        wait_for(lambda: sample_value(scrape(server), "flywheel_model_reloads_total",
                                      outcome="failure") >= 1, 30,
                 "a failed reload to be counted")
        response = server.client.post("/predict", json=records[0])
        assert response.status_code == 200
        assert response.json()[0]["model_version"] == "2"
        assert server.client.get("/readyz").status_code == 200
    finally:  # the session registry's champion must load for the modules that start after
        registry.client().set_registered_model_alias(registry.name, "champion", good)


# --- no champion -----------------------------------------------------------------------------

def test_no_champion_starts_unready_and_answers_503(cold_server: Server,
                                                    records: list[dict[str, Any]]) -> None:
    assert cold_server.client.get("/livez").status_code == 200
    assert cold_server.client.get("/readyz").status_code == 503
    response = cold_server.client.post("/predict", json=records[0])
    assert response.status_code == 503
    assert "flywheel run" in response.json()["error"]
    assert cold_server.client.get("/metadata").status_code == 503


def test_champion_appears_and_unwritable_log_never_fails_predictions(
        cold_server: Server, empty_registry: Registry, records: list[dict[str, Any]]) -> None:
    empty_registry.register(commit="c0ffee1", data_md5="data-v1")
    wait_for(lambda: cold_server.client.get("/readyz").status_code == 200, 30,
             "the service to pick up the new champion")
    for _ in range(5):
        response = cold_server.client.post("/predict", json=records[:3])
        assert response.status_code == 200, response.text
    wait_for(lambda: sample_value(scrape(cold_server), "flywheel_inference_log_write_errors_total")
             >= 1, 15, "the failed log write to be counted")
    time.sleep(0.1)
    assert cold_server.client.post("/predict", json=records[0]).status_code == 200
