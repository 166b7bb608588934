"""A real service under attack and under faults: tokens, hostile bodies, fuzzing, personal data
in the log, retention, an altered model artifact, a locked registry.

One server for the module, with a token, a PII salt and a short body timeout. It serves its
own registry (a copy of the session's trained model whose registered spec marks
`payment_method` personal), so moving its champion never disturbs other modules. Tests run in
file order: the integrity and registry tests move the champion, so they come last.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from tests.integration.serving.conftest import (
    MODEL_NAME,
    Registry,
    Server,
    start_server,
    stop_server,
    wait_for,
)
from tests.integration.serving.test_service import sample_value, scrape

pytestmark = pytest.mark.slow

TOKEN = "hostile-test-token"
SALT = "hostile-test-salt"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PII_FEATURE = "payment_method"
BODY_TIMEOUT_S = 2
TALLY: Counter[str] = Counter()  # cases tried per kind, printed for the closing note


def _model_copy(registry: Registry, dest: Path) -> Path:
    import mlflow.artifacts

    local = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=registry.artifacts, dst_path=str(dest))
    )
    spec_file = next((local / "artifacts").glob("*.spec.yaml"))
    spec = yaml.safe_load(spec_file.read_text())
    for feature in spec["features"]:
        if feature["name"] == PII_FEATURE:
            feature["pii"] = True
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    return local


def _old_log_files(log_dir: Path) -> None:
    """What retention must clear at start: one file past the age limit, one past the size."""
    log_dir.mkdir(parents=True)
    now = time.time()
    for name, size, age_days in (
        ("inference-old.parquet", 10, 60),
        ("inference-big-1.parquet", 150_000, 2),
        ("inference-big-2.parquet", 150_000, 1),
    ):
        (log_dir / name).write_bytes(b"x" * size)
        os.utime(log_dir / name, (now - age_days * 86400, now - age_days * 86400))
    (log_dir / "keep-me.txt").write_text("not the log's own file\n")


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Registry:
    tmp = tmp_path_factory.mktemp("hostile-registry")
    local = _model_copy(registry, tmp / "model")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    reg = Registry(uri=uri, name=MODEL_NAME, model_source=local.as_uri(), artifacts=local.as_uri())
    reg.client().search_experiments()  # create the store before the server reads it
    reg.register(commit="c0ffee2", data_md5="data-v1")
    return reg


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, own: Registry) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hostile-server")
    _old_log_files(tmp / "log" / own.name)  # the served model's own folder
    registered_spec = next(Path(own.artifacts.removeprefix("file://")).glob("artifacts/*.spec.yaml"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLYWHEEL_API_TOKEN", TOKEN)
        env.setenv("FLYWHEEL_PII_SALT", SALT)
        # what `flywheel serve` hands the workers: the champion's own registered spec
        env.setenv("FLYWHEEL_SERVE_SPEC", str(registered_spec))
        running = start_server(
            tmp,
            own,
            log_dir=tmp / "log",
            request_body_timeout_s=BODY_TIMEOUT_S,
            inference_log_max_bytes=200_000,
            inference_log_max_age_days=30,
        )
    yield running
    stop_server(running)


def predict(
    server: Server, body: bytes | str, headers: dict[str, str] | None = None, timeout: float = 15
) -> httpx.Response:
    return server.client.post(
        "/predict",
        content=body,
        timeout=timeout,
        headers={"Content-Type": "application/json", **AUTH, **(headers or {})},
    )


# --- who may call ----------------------------------------------------------------------------


def test_reads_are_open_and_writes_need_the_token(
    guarded: Server, records: list[dict[str, Any]]
) -> None:
    bare = httpx.Client(base_url=guarded.url, timeout=15)
    with bare:
        for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
            assert bare.get(path).status_code == 200, path
        assert bare.get("/metadata").status_code == 401  # the predict token, once one is set
        assert bare.get("/metadata", headers=AUTH).status_code == 200
        assert bare.post("/predict", json=records[0]).status_code == 401
        wrong = bare.post("/predict", json=records[0], headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401
        assert "Traceback" not in wrong.text
    assert predict(guarded, json.dumps(records[0])).status_code == 200
    TALLY["unauthenticated requests"] += 2


# --- hostile bodies --------------------------------------------------------------------------


def _with(record: dict[str, Any], **changes: Any) -> str:
    return json.dumps({**record, **changes})


def hostile_bodies(record: dict[str, Any]) -> dict[str, tuple[bytes | str, dict[str, str]]]:
    raw = json.dumps(record)
    json_ct: dict[str, str] = {}
    return {
        "deep arrays": ("[" * 100_000 + "]" * 100_000, json_ct),
        "deep objects": ('{"a":' * 50_000 + "1" + "}" * 50_000, json_ct),
        "unclosed brackets": ("[" * 200_000, json_ct),
        "deep inside a field": (_with(record, contract=[[[[[[[[["x"]]]]]]]]]), json_ct),
        "deep records": ("[" * 40 + raw + "]" * 40, json_ct),
        "huge float": (raw[:-1] + ', "tenure": 1e400}', json_ct),
        "huge integer": (raw[:-1] + ', "monthly_charges": ' + "9" * 5000 + "}", json_ct),
        "negative huge": (_with(record, total_charges=-1.7e308), json_ct),
        "unicode category": (_with(record, contract="合同 💥 \u202e"), json_ct),
        "lone surrogate": (raw[:-1] + ', "x": "\\ud800"}', json_ct),
        "nul bytes": (_with(record, contract="a\u0000b"), json_ct),
        "duplicate keys": (raw[:-1] + ', "tenure": 3}', json_ct),
        "text/plain": (raw, {"Content-Type": "text/plain"}),
        "form encoded": (raw, {"Content-Type": "application/x-www-form-urlencoded"}),
        "multipart": (
            b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--",
            {"Content-Type": "multipart/form-data; boundary=x"},
        ),
        "pickle bytes": (
            b"\x80\x05\x95" + os.urandom(64),
            {"Content-Type": "application/octet-stream"},
        ),
        "empty body": ("", json_ct),
        "null": ("null", json_ct),
        "a number": ("1e999", json_ct),
        "a string": ('"' + "a" * 500_000 + '"', json_ct),
        "huge string field": (_with(record, contract="c" * 900_000), json_ct),
        "many empty records": ("[" + ",".join(["{}"] * 20_000) + "]", json_ct),
        "invalid utf-8": (b'{"contract": "\xff\xfe"}', json_ct),
        "bom": ("\ufeff" + raw, json_ct),
        "trailing garbage": (raw + "}}}", json_ct),
        "nested null": (_with(record, tenure={"$gt": 0}), json_ct),
        "boolean for number": (_with(record, tenure=True), json_ct),
        "list of lists": ("[[1,2],[3,4]]", json_ct),
    }


def test_hostile_bodies_get_a_4xx_and_the_service_keeps_serving(
    guarded: Server, records: list[dict[str, Any]]
) -> None:
    statuses = {}
    for name, (body, headers) in hostile_bodies(records[0]).items():
        try:
            response = predict(guarded, body, headers)
        except httpx.TimeoutException:
            statuses[name] = 0  # no answer within the client's timeout
            continue
        statuses[name] = response.status_code
        assert "Traceback" not in response.text, name
    TALLY["hand-written hostile bodies"] += len(statuses)
    server_errors = {k: v for k, v in statuses.items() if v >= 500 or v == 0}
    assert not server_errors, statuses
    assert statuses["deep arrays"] == statuses["unclosed brackets"] == 400
    assert statuses["duplicate keys"] == 200 and statuses["unicode category"] == 200
    assert predict(guarded, json.dumps(records[:5])).status_code == 200


def test_slow_bodies_are_cut_off_while_others_are_served(
    guarded: Server, records: list[dict[str, Any]]
) -> None:
    host, port = guarded.url.removeprefix("http://").split(":")
    slow = []
    for _ in range(4):
        sock = socket.create_connection((host, int(port)), timeout=BODY_TIMEOUT_S + 10)
        sock.sendall(
            f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n[".encode()
        )
        slow.append(sock)
    try:
        assert predict(guarded, json.dumps(records[0])).status_code == 200
        for sock in slow:
            answer = sock.recv(4096).decode(errors="replace")  # blocks until cut off
            assert answer.startswith("HTTP/1.1 408"), answer[:200]
    finally:
        for sock in slow:
            sock.close()
    TALLY["slow (slowloris) bodies"] += len(slow)


def test_fuzzing_from_the_openapi_document_finds_no_server_error(guarded: Server) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{guarded.url}/docs.json")
    operation = schema["/predict"]["POST"]
    seen: Counter[int] = Counter()
    for mode in schemathesis.GenerationMode:

        @settings(
            max_examples=50,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: Any) -> None:
            response = case.call(base_url=guarded.url, headers=AUTH, timeout=15)
            seen[response.status_code] += 1
            assert response.status_code < 500, (case.body, response.text[:300])

        call()
    TALLY["schemathesis cases"] += sum(seen.values())
    assert sum(seen.values()) >= 50 and seen[200] >= 1 and seen[422] >= 1, seen


def _tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def test_after_the_floods_memory_is_bounded_and_the_log_readable(
    guarded: Server, records: list[dict[str, Any]]
) -> None:
    before = _tree_rss(guarded.process.pid)
    deep = "[" * 100_000 + "]" * 100_000
    for _ in range(30):
        assert predict(guarded, deep).status_code == 400
        assert predict(guarded, _with(records[0], tenure="x")).status_code == 422
    TALLY["repeated floods"] += 60
    assert _tree_rss(guarded.process.pid) - before < 150 * 2**20
    log = guarded.output.read_text(errors="replace")
    assert "Traceback" not in log and "RecursionError" not in log
    assert len(log.splitlines()) < 200, log[-3000:]
    assert predict(guarded, json.dumps(records[:3])).status_code == 200


# --- personal data and retention ------------------------------------------------------------


def test_personal_fields_are_hashed_in_the_inference_log(
    guarded: Server, records: list[dict[str, Any]]
) -> None:
    import pandas as pd

    sent = records[:8]
    answer = predict(guarded, json.dumps(sent))
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]

    def logged() -> list[dict[str, Any]] | None:
        for path in sorted(guarded.log_dir.glob("inference-2*.parquet")):
            frame = pd.read_parquet(path)
            mine = frame[frame["request_id"] == request_id]
            if len(mine):
                return list(mine.to_dict(orient="records"))
        return None

    rows = wait_for(logged, 30, "the request in the inference log")
    expected = [
        hmac.new(SALT.encode(), str(r[PII_FEATURE]).encode(), hashlib.sha256).hexdigest()
        for r in sent
    ]
    assert [row[PII_FEATURE] for row in rows] == expected
    assert not {r[PII_FEATURE] for r in sent} & {row[PII_FEATURE] for row in rows}
    assert [row["tenure"] for row in rows] == [r["tenure"] for r in sent]  # others kept as sent


def test_retention_cleared_old_and_oversized_files_only(guarded: Server) -> None:
    names = {p.name for p in guarded.log_dir.iterdir()}
    assert "inference-old.parquet" not in names  # older than inference_log_max_age_days
    assert "inference-big-1.parquet" not in names  # oldest past inference_log_max_bytes
    assert "keep-me.txt" in names  # not one of the log's own files
    assert any(name.startswith("inference-2") for name in names)  # the newest rows stay
    total = sum(p.stat().st_size for p in guarded.log_dir.glob("inference-*.parquet"))
    assert total <= 200_000


# --- tampering and a registry that goes away -------------------------------------------------


def test_an_altered_model_artifact_is_refused_and_the_old_one_keeps_serving(
    guarded: Server, own: Registry, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(Path(own.model_source.removeprefix("file://")), copy)
    version = own.register(commit="evil", data_md5="evil", source=copy.as_uri(), champion=False,
                           verdict="promoted")  # signed: the files are altered after that
    pickled = next((copy / "artifacts").glob("model.pkl"))
    pickled.write_bytes(pickled.read_bytes() + b"\n# altered after registration")
    own.client().set_registered_model_alias(own.name, "champion", version)
    wait_for(
        lambda: (
            sample_value(scrape(guarded), "flywheel_model_reloads_total", outcome="integrity_error")
            >= 1
        ),
        30,
        "a refused reload",
    )
    assert guarded.client.get("/metadata", headers=AUTH).json()["model_version"] == "1"
    assert guarded.client.get("/readyz").status_code == 200
    (answer,) = predict(guarded, json.dumps(records[0])).json()
    assert answer["model_version"] == "1"
    assert "SHA-256" in guarded.output.read_text(errors="replace")
    TALLY["altered artifacts"] += 1


def test_a_locked_registry_keeps_the_model_serving_and_is_picked_up_again(
    guarded: Server, own: Registry, records: list[dict[str, Any]]
) -> None:
    before = sample_value(scrape(guarded), "flywheel_model_reloads_total", outcome="registry_error")
    holder = sqlite3.connect(own.uri.removeprefix("sqlite:///"), timeout=1)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        wait_for(
            lambda: (
                sample_value(
                    scrape(guarded), "flywheel_model_reloads_total", outcome="registry_error"
                )
                > before
            ),
            60,
            "a failed registry poll",
        )
        assert guarded.client.get("/readyz").status_code == 200
        (answer,) = predict(guarded, json.dumps(records[0])).json()
        assert answer["model_version"] == "1"
    finally:
        holder.rollback()
        holder.close()
    fresh = own.register(commit="c0ffee3", data_md5="data-v3")
    wait_for(
        lambda: guarded.client.get("/metadata", headers=AUTH).json()["model_version"] == fresh,
        60,
        "the registry picked up again",
    )
    TALLY["registry outages"] += 1
    print(f"\nhostile cases tried: {dict(TALLY)}")
