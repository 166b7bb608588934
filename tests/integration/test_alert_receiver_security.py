"""`flywheel alert-receiver` against forged, hostile and oversized webhooks (issue 18).

A real receiver process on loopback, a real Prefect server behind it. Every refusal happens
before the body is read or the event is emitted; a forgery never reaches the deduplication
memory, so the real alert after it still starts retraining; a 900 KB label is answered at once
and the process still stops on SIGTERM; nothing a caller chooses picks the model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerting import Running, alert_events, notification, receiver_headers, start
from tests.integration.serving.conftest import free_port, wait_for

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
MODEL = "churn"


@pytest.fixture(scope="module")
def receiver(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("receiver")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_ALERT")}
    env |= {"PREFECT_API_URL": prefect_server, "FLYWHEEL_ROOT": str(root)}
    with ExitStack() as stack:
        yield start(stack, "receiver",
                    [str(BIN / "flywheel"), "alert-receiver", "--port", str(port),
                     "--model", MODEL],
                    cwd=root, env=env, url=f"http://127.0.0.1:{port}", probe="/healthz")


def post(receiver: Running, body: Any, headers: dict[str, str] | None = None,
         **kw: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **receiver_headers(receiver.log.parent),
            **(headers or {})}
    return httpx.post(receiver.url + "/alerts", content=content, headers=sent, timeout=30, **kw)


def counts(receiver: Running) -> dict[str, float]:
    text = httpx.get(receiver.url + "/metrics/", timeout=5).text
    found = {}
    for line in text.splitlines():
        if line.startswith("flywheel_alert_receiver_notifications_total{"):
            found[line.split('outcome="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return found


def drift(group: str, **labels: str) -> dict[str, Any]:
    return notification("firing", [{"alertname": "FlywheelFeatureDrift", "feature": "tenure",
                                    "model_version": "4", **labels}], group=group)


def test_the_token_is_generated_private_on_a_loopback_bind(receiver: Running) -> None:
    token_file = receiver.log.parent / ".flywheel" / "alert-receiver.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert len(token_file.read_text().strip()) >= 32


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": ""}, 401),
        ({"Authorization": "Bearer not-the-token"}, 401),
        ({"Host": "evil.example"}, 403),  # DNS rebinding: a page at evil.example -> 127.0.0.1
        ({"Content-Type": "text/plain"}, 415),  # a cross-site form post needs no preflight
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_requests_that_are_not_alertmanagers_are_refused(
    receiver: Running, headers: dict[str, str], status: int
) -> None:
    answer = post(receiver, drift(f"{{}}:{{refused-{status}}}"), headers)
    assert answer.status_code == status, answer.text
    assert "\n" not in answer.json()["error"]


def test_oversized_bodies_are_refused_before_they_are_read(receiver: Running) -> None:
    port = int(receiver.url.rsplit(":", 1)[1])
    token = receiver_headers(receiver.log.parent)["Authorization"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # 50 MB announced
        raw.sendall(f"POST /alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n{"
                    .encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 413")  # answered without the 50 MB

    def chunks() -> Iterator[bytes]:  # no Content-Length: the streaming cap must stop it
        for _ in range(64):
            yield b" " * (64 << 10)

    streamed = httpx.post(receiver.url + "/alerts", content=chunks(), timeout=30,
                          headers={"Content-Type": "application/json",
                                   **receiver_headers(receiver.log.parent)})
    assert streamed.status_code == 413


def test_a_forgery_cannot_use_up_the_real_alerts_cooldown(receiver: Running) -> None:
    """The attack of issue 18: forged first (same group, caller-chosen fields), real after."""
    since = time.time() - 5
    group = f"{{}}:{{forged-{time.time_ns()}}}"
    forged = drift(group, model_name="flywheel-accounts")
    for alert in forged["alerts"]:
        alert["labels"]["reason"] = "attacker chose this"
    before = counts(receiver).get("emitted", 0)
    assert post(receiver, forged, {"Authorization": ""}).status_code == 401
    real = post(receiver, drift(group))
    assert real.status_code == 202, real.text
    assert counts(receiver)["emitted"] == before + 1
    [event] = wait_for(lambda: [e for e in alert_events(since)
                                if e["payload"].get("group_key") == group], 30, "the event")
    assert event["resource"]["prefect.resource.id"] == f"flywheel.model.{MODEL}"
    assert "attacker" not in json.dumps(event)


def test_the_model_comes_from_the_receivers_own_config(receiver: Running) -> None:
    other = post(receiver, drift(f"{{}}:{{other-{time.time_ns()}}}", model_name="accounts"))
    assert other.status_code == 200 and "no firing alert for churn" in other.text


def test_a_start_in_the_future_cannot_pre_empt_a_real_alert(receiver: Running) -> None:
    body = drift("{}:{future}")
    body["alerts"][0]["startsAt"] = "2999-01-01T00:00:00Z"
    answer = post(receiver, body)
    assert answer.status_code == 422 and "startsAt" in answer.json()["error"]


def test_an_event_prefect_would_drop_is_refused_before_the_202(receiver: Running) -> None:
    labels = [{"alertname": f"A{i}" + "x" * 60, "feature": "f" * 64, "metric": "m" * 64,
               "model_version": "v" * 64} for i in range(900)]
    answer = post(receiver, notification("firing", labels, group="{}:{huge}"))
    assert answer.status_code == 413 and "event of" in answer.json()["error"]


def test_a_900_kb_label_is_answered_at_once_and_sigterm_still_stops_it(
    prefect_server: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_ALERT")}
    env |= {"PREFECT_API_URL": prefect_server, "FLYWHEEL_ROOT": str(tmp_path)}
    with ExitStack() as stack:
        running = start(stack, "receiver", [str(BIN / "flywheel"), "alert-receiver", "--port",
                                            str(port), "--model", MODEL],
                        cwd=tmp_path, env=env, url=f"http://127.0.0.1:{port}", probe="/healthz")
        body = drift("{}:{big-label}", feature="[bold]" + "a.b(c)=1 " * 100_000)
        started = time.monotonic()
        answer = post(running, body)
        assert time.monotonic() - started < 10, "a big label held the receiver"
        assert answer.status_code in (202, 413), answer.text
        running.process.send_signal(15)
        running.process.wait(timeout=15)
    logged = running.log.read_text(errors="replace")
    assert len(logged) < 20_000 and "a.b(c)=1 " * 50 not in logged


def test_listening_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_ALERT")}
    env |= {"PREFECT_API_URL": "http://127.0.0.1:9/api", "FLYWHEEL_ROOT": str(tmp_path)}
    done = subprocess.run([str(BIN / "flywheel"), "alert-receiver", "--host", "0.0.0.0",
                           "--port", str(free_port()), "--model", MODEL], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "without a token" in " ".join(done.stderr.split())
    assert not (tmp_path / ".flywheel").exists()  # nothing generated for a network bind
