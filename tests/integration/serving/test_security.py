"""Issue 18's attacks on the service, replayed against a real `bentoml serve` on loopback.

One guarded server for the module (a predict token, an allow-listed host name, short header
timeout, a 1 KiB inference log cap, label compaction past 3 files); the supervisor and
`flywheel serve` tests start and kill servers of their own. Each test names the attack it
replays and what must hold instead.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.serving.conftest import (
    ROOT,
    Registry,
    Server,
    free_port,
    start_server,
    stop_process,
    stop_server,
    wait_for,
    write_params,
)
from tests.integration.serving.test_service import sample_value, scrape

pytestmark = pytest.mark.slow

TOKEN = "security-predict-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALLOWED_NAME = "flywheel.internal"
HEADER_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("security-server")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLYWHEEL_API_TOKEN", TOKEN)
        env.setenv("FLYWHEEL_ALLOWED_HOSTS", ALLOWED_NAME)
        env.setenv("FLYWHEEL_FEEDBACK_DIR", str(tmp / "feedback"))
        running = start_server(tmp, registry, header_timeout_s=HEADER_TIMEOUT_S,
                               inference_log_max_bytes=1024, feedback_max_files=3)
    yield running
    stop_server(running)


def post(server: Server, path: str, body: Any, headers: dict[str, str] | None = None,
         **options: Any) -> httpx.Response:
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    return server.client.post(path, content=content, headers={
        "Content-Type": "application/json", **(headers or {})}, **options)


def answered_ids(server: Server, records: list[dict[str, Any]]) -> list[str]:
    """Predict each record; the request ids the server issued, once they are in its log."""
    ids = []
    for record in records:
        answer = post(server, "/predict", record, AUTH)
        assert answer.status_code == 200, answer.text
        ids.append(answer.headers["x-request-id"])
    wait_for(lambda: set(ids) <= logged(server), 30, "the ids in the inference log")
    return ids


def logged(server: Server) -> set[str]:
    import pyarrow.parquet as pq

    found: set[str] = set()
    for path in server.log_dir.glob("inference-*.parquet"):
        with contextlib.suppress(OSError, ValueError):  # deleted by retention while read
            found.update(pq.read_table(path, columns=["request_id"]).column(0).to_pylist())
    return found


def feedback_files(server: Server) -> list[Path]:
    return sorted((server.home.parent / "feedback" / server.log_dir.name).glob("*.parquet"))


# --- tokens and scopes ----------------------------------------------------------------------


def test_label_poisoning_needs_the_feedback_token(
        secure: Server, records: list[dict[str, Any]]) -> None:
    """Attack: 250 inverted labels as text/plain with no token (or the predict token)."""
    ids = answered_ids(secure, records[:5])
    poison = [{"request_id": i, "label": "Yes"} for i in ids] * 50
    plain = {"Content-Type": "text/plain"}
    assert post(secure, "/feedback", poison, plain).status_code == 401
    assert post(secure, "/feedback", poison).status_code == 401
    assert post(secure, "/feedback", poison, AUTH).status_code == 401  # predict cannot label
    feedback = secure.auth("feedback")
    assert post(secure, "/feedback", poison, {**feedback, **plain}).status_code == 415
    assert feedback_files(secure) == []  # nothing stored by any of them
    accepted = post(secure, "/feedback", poison[:5], feedback)
    assert accepted.status_code == 200 and accepted.json() == {"accepted": 5}
    assert post(secure, "/feedback", poison[:5], secure.auth("admin")).status_code == 200
    mode = stat.S_IMODE(secure.tokens_file.stat().st_mode)
    assert mode == 0o600, oct(mode)


def test_metadata_needs_the_predict_token_once_one_is_set(secure: Server) -> None:
    assert secure.client.get("/metadata").status_code == 401
    assert secure.client.get("/metadata", headers=AUTH).json()["model_version"] == "1"
    for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
        assert secure.client.get(path).status_code == 200, path


# --- Host and content type -------------------------------------------------------------------


def test_foreign_hosts_and_non_json_bodies_are_refused_on_every_write(
        secure: Server, records: list[dict[str, Any]]) -> None:
    """Attack: DNS rebinding (a page on evil.example resolving to 127.0.0.1) and form posts."""
    port = secure.url.rsplit(":", 1)[1]
    record = records[0]
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{int(port) + 1}"):
        for path, headers in (("/predict", AUTH), ("/feedback", secure.auth("feedback"))):
            refused = post(secure, path, record, {**headers, "Host": host})
            assert refused.status_code == 403, (host, path, refused.text)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", ALLOWED_NAME, f"{ALLOWED_NAME}:443"):
        assert post(secure, "/predict", record, {**AUTH, "Host": host}).status_code == 200, host
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; "
                 "boundary=x", "application/octet-stream", ""):
        for path, headers in (("/predict", AUTH), ("/feedback", secure.auth("feedback"))):
            answer = post(secure, path, record, {**headers, "Content-Type": kind})
            assert answer.status_code == 415, (path, kind, answer.text)
    assert post(secure, "/predict", record,
                {**AUTH, "Content-Type": "application/json; charset=utf-8"}).status_code == 200
    reasons = scrape(secure)
    assert sample_value(reasons, "flywheel_invalid_requests_total", reason="foreign_host") >= 6


# --- bounded input ---------------------------------------------------------------------------


def test_long_strings_are_refused_and_cannot_erase_the_log(
        secure: Server, records: list[dict[str, Any]]) -> None:
    """Attack: 45 requests of 930 KB categories took the inference log from 1 file to 0."""
    kept = answered_ids(secure, records[:3])
    huge = {**records[0], "contract": "c" * 930_000}
    for _ in range(45):
        answer = post(secure, "/predict", huge, AUTH)
        assert answer.status_code == 422, answer.text[:200]
        assert "'contract'" in answer.json()["error"] and "256" in answer.json()["error"]
    assert list(secure.log_dir.glob("inference-*.parquet"))  # never emptied
    assert kept[-1] in logged(secure)  # the newest file, with the last id, is kept
    log = secure.output.read_text(errors="replace")
    assert "inference log retention: deleted" in log  # at WARNING (1 KiB cap)


def test_a_lone_surrogate_fails_its_own_request_and_no_other(
        secure: Server, records: list[dict[str, Any]]) -> None:
    """Attack: a "\\ud800" category broke the batched model call: 595 x 500 for others."""
    poisoned = json.dumps(records[0])[:-1] + ', "contract": "\\ud800"}'
    poisoned = poisoned.replace(f'"contract": {json.dumps(records[0]["contract"])}, ', "", 1)

    def good(n: int) -> int:
        return post(secure, "/predict", records[n % 50], AUTH).status_code

    def bad(_: int) -> httpx.Response:
        return post(secure, "/predict", poisoned, AUTH)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        goods = pool.map(good, range(300))
        bads = list(pool.map(bad, range(60)))
        statuses = list(goods)
    assert statuses == [200] * 300
    assert {b.status_code for b in bads} == {422}
    assert "record 0, field 'contract'" in bads[0].json()["error"]
    assert "Unicode" in bads[0].json()["error"]


def test_feedback_gets_the_limits_of_predict(secure: Server) -> None:
    """Attack: a 42 MB chunked body was read whole (+430 MB); deep bodies gave 500s."""
    feedback = {**secure.auth("feedback"), "Content-Type": "application/json"}
    before = _tree_rss(secure.process.pid)

    def chunks() -> Iterator[bytes]:
        for _ in range(42):
            yield b"[" + b" " * (1 << 20)

    started = time.monotonic()
    try:
        answer = secure.client.post("/feedback", content=chunks(), headers=feedback)
        assert answer.status_code == 413
    except httpx.HTTPError:
        pass  # the server may close the connection before the client finishes sending
    assert time.monotonic() - started < 20
    assert _tree_rss(secure.process.pid) - before < 100 * 2**20
    assert post(secure, "/feedback", "[" * 50_000 + "]" * 50_000, feedback).status_code == 400
    assert post(secure, "/feedback", '{"request_id": "\\ud800", "label": "No"}',
                feedback).status_code == 400
    long_id = post(secure, "/feedback", {"request_id": "r" * 5000, "label": "No"}, feedback)
    assert long_id.status_code == 422 and len(long_id.text) < 300
    assert "Traceback" not in secure.output.read_text(errors="replace")


def test_one_record_with_50000_errors_is_a_short_422(
        secure: Server, records: list[dict[str, Any]]) -> None:
    record = {**records[0], **{f"f{n}": 0 for n in range(50_000)}}
    started = time.monotonic()
    answer = post(secure, "/predict", record, AUTH)
    assert answer.status_code == 422 and time.monotonic() - started < 10
    assert len(answer.json()["detail"]) == 10 and "(and 49999 more)" in answer.json()["error"]
    assert len(answer.content) < 5000


def test_log_lines_of_request_text_are_escaped(secure: Server) -> None:
    forged = "\nERROR forged: model deleted\n"
    post(secure, "/predict", {forged: 1}, AUTH)
    post(secure, "/feedback", {"request_id": forged, "label": "No"}, secure.auth("feedback"))
    log = secure.output.read_text(errors="replace")
    assert not any(line.startswith("ERROR forged") for line in log.splitlines())


def test_unknown_paths_share_one_metrics_label(secure: Server) -> None:
    """Attack: 7,000 GETs of made-up paths made /metrics 165 MB (one series per path)."""
    for n in range(300):
        assert secure.client.get(f"/made-up-{n}").status_code == 404
    metrics = secure.client.get("/metrics").text
    assert "made-up" not in metrics
    assert 'endpoint="/_unknown"' in metrics and len(metrics) < 200_000


# --- ids, labels kept, connections ------------------------------------------------------------


def test_request_ids_are_issued_by_the_server(
        secure: Server, records: list[dict[str, Any]]) -> None:
    answer = post(secure, "/predict", records[0], {**AUTH, "X-Request-ID": "chosen-id"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] != "chosen-id"
    refused = post(secure, "/feedback", {"request_id": "chosen-id", "label": "No"},
                   secure.auth("feedback"))
    assert refused.status_code == 404


def test_label_files_stay_few(secure: Server, records: list[dict[str, Any]]) -> None:
    """Was: one Parquet file per POST, never removed."""
    from flywheel.monitoring.feedback import read_feedback

    ids = answered_ids(secure, records[10:22])
    for request_id in ids:
        answer = post(secure, "/feedback", {"request_id": request_id, "label": "Yes"},
                      secure.auth("feedback"))
        assert answer.status_code == 200, answer.text
        assert len(feedback_files(secure)) <= 4  # feedback_max_files + 1
    stored = read_feedback(secure.home.parent / "feedback" / secure.log_dir.name)
    assert stored is not None and set(ids) <= set(stored["request_id"])


def test_headers_sent_a_byte_at_a_time_are_cut_off(
        secure: Server, records: list[dict[str, Any]]) -> None:
    host, port = secure.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HEADER_TIMEOUT_S + 10) as slow:
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert post(secure, "/predict", records[0], AUTH).status_code == 200
        for _ in range(HEADER_TIMEOUT_S * 4):  # one header byte every 0.5 s
            try:
                slow.sendall(b"X")
            except OSError:
                break
            time.sleep(0.5)
        assert slow.recv(1024) == b""  # closed by the server
    assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_the_index_page_loads_nothing_from_third_parties(secure: Server) -> None:
    page = secure.client.get("/")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "googletagmanager" not in page.text and "<iframe" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def _tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


# --- supervisors -----------------------------------------------------------------------------


def _port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_feedback_needs_a_token_without_a_predict_token_and_workers_die_with_supervisor(
        tmp_path: Path, registry: Registry, records: list[dict[str, Any]]) -> None:
    """Attack: /feedback was open on loopback; workers kept the port after `kill -9`."""
    server = start_server(tmp_path, registry)
    try:
        assert post(server, "/predict", records[0]).status_code == 200  # predict open here
        label = {"request_id": "x", "label": "No"}
        assert post(server, "/feedback", label).status_code == 401
        assert post(server, "/feedback", label, server.auth("feedback")).status_code == 404
        workers = psutil.Process(server.process.pid).children(recursive=True)
        assert workers
        port = int(server.url.rsplit(":", 1)[1])
        os.kill(server.process.pid, signal.SIGKILL)  # the supervisor only
        wait_for(lambda: _port_closed(port), 40, "the port to be freed")
        wait_for(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE
                                 for w in workers), 40, "the workers to exit")
    finally:
        server.client.close()
        _kill_group(server.process)


def _live(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _flywheel_serve(tmp: Path, registry: Registry, home: Path, port: int,
                    output: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLYWHEEL_ROOT": str(ROOT),
           "FLYWHEEL_PARAMS_FILE": str(write_params(tmp / "params.yaml", registry.name)),
           "FLYWHEEL_TRACKING_URI": registry.uri, "MLFLOW_TRACKING_URI": registry.uri,
           "FLYWHEEL_INFERENCE_LOG_DIR": str(tmp / "log"), "BENTOML_HOME": str(home),
           "FLYWHEEL_TOKENS_FILE": str(tmp / "tokens.json"), "BENTOML_DO_NOT_TRACK": "true"}
    flywheel = Path(sys.executable).with_name("flywheel")
    with output.open("wb") as sink:
        return subprocess.Popen([str(flywheel), "serve", "--port", str(port)], cwd=tmp, env=env,
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def test_a_second_serve_on_the_same_home_is_refused_and_serve_stops_its_server(
        tmp_path: Path, registry: Registry) -> None:
    """Attack: a second `flywheel serve` with the same BENTOML_HOME wiped the first's metrics;
    `flywheel serve` killed with SIGKILL left its server running."""
    home, port = tmp_path / "home", free_port()
    first = _flywheel_serve(tmp_path, registry, home, port, tmp_path / "first.log")
    try:
        wait_for(lambda: _live(port), 120, "the first server")
        second = _flywheel_serve(tmp_path, registry, home, free_port(), tmp_path / "second.log")
        assert second.wait(timeout=120) == 2
        lines = (tmp_path / "second.log").read_text().strip().splitlines()
        assert len(lines) == 1 and "another `flywheel serve` is running" in lines[0], lines
        assert _live(port)  # the first one untouched
        os.kill(first.pid, signal.SIGKILL)  # `flywheel serve` itself, not its server
        wait_for(lambda: _port_closed(port), 60, "the server to stop with flywheel serve")
    finally:
        stop_process(first)
        _kill_group(first)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Whatever is left of a process group a test started and whose leader it killed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
