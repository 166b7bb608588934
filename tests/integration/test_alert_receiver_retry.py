"""`flywheel alert-receiver` while the Prefect API is down, then back.

Alertmanager retries a notification that got a 5xx, so the receiver must answer 503 when it
cannot hand the event to Prefect, and must not remember that group as handled: the retry,
once the API answers, is the one that emits the event, exactly once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.alerting import alert_events, notification, receiver_headers, start
from tests.conftest import cli_command
from tests.integration.serving.conftest import free_port, wait_for

pytestmark = pytest.mark.slow


@contextmanager
def forward(port: int, target: str) -> Iterator[None]:
    """A TCP relay from 127.0.0.1:`port` to `target` (host:port): the API "coming back" on
    the address the receiver was started with. Closed (and its threads joined) on exit."""
    host, target_port = target.rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)
    done = threading.Event()
    threads: list[threading.Thread] = []

    def pump(source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.2)
        while not done.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            sink.sendall(data)
        sink.close()

    def accept() -> None:
        while not done.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection((host, int(target_port)))
            for a, b in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=pump, args=(a, b), daemon=True)
                thread.start()
                threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield
    finally:
        done.set()
        acceptor.join(timeout=5)
        for thread in threads:
            thread.join(timeout=5)
        listener.close()


def test_receiver_answers_503_while_prefect_is_down_and_the_retry_emits_once(
    prefect_server: str, tmp_path: Path
) -> None:
    api_port = free_port()  # nothing listens here yet
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{api_port}/api",
           "FLYWHEEL_ROOT": str(tmp_path)}  # its token is generated under the project
    port = free_port()
    group = f"{{}}:{{retry-{time.time_ns()}}}"
    body = notification(
        "firing",
        [{"alertname": "FlywheelFeatureDrift", "feature": "tenure", "model_version": "4"}],
        group=group,
    )
    since = time.time() - 5
    with ExitStack() as stack:
        receiver = start(
            stack,
            "receiver",
            cli_command("alert-receiver", "--port", str(port), "--model", "churn"),
            cwd=tmp_path,
            env=env,
            url=f"http://127.0.0.1:{port}",
            probe="/healthz",
        )
        headers = receiver_headers(tmp_path)
        down = httpx.post(receiver.url + "/alerts", json=body, headers=headers, timeout=60)
        assert down.status_code == 503, down.text
        assert "Prefect API" in down.json()["error"]
        with forward(api_port, prefect_server.split("//")[1].split("/")[0]):
            retry = httpx.post(receiver.url + "/alerts", json=body, headers=headers, timeout=60)
            assert retry.status_code == 202, f"{retry.text}\n{receiver.tail()}"
            again = httpx.post(receiver.url + "/alerts", json=body, headers=headers, timeout=60)
            assert again.status_code == 200 and "already handled" in again.text
        counts = httpx.get(receiver.url + "/metrics/", timeout=5).text
    assert 'flywheel_alert_receiver_notifications_total{outcome="error"} 1.0' in counts
    assert 'flywheel_alert_receiver_notifications_total{outcome="emitted"} 1.0' in counts

    def ours() -> list[dict]:
        return [e for e in alert_events(since) if e["payload"].get("group_key") == group]

    [event] = wait_for(ours, 30, "the retried notification's event in Prefect")
    assert event["payload"]["reason"] == (
        "alert: FlywheelFeatureDrift feature=tenure model_version=4"
    )
    assert event["resource"]["prefect.resource.id"] == "flywheel.model.churn"
    time.sleep(2)  # a second copy would be stored by now; there must be none
    assert len(ours()) == 1
