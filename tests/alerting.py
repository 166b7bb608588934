"""Helpers for tests that run the alerting path for real: processes started in their own
session and stopped by an ExitStack, Alertmanager-shaped webhook bodies, and the Prefect
events and client calls they are checked against."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.serving.conftest import stop_process, wait_for

START_TIMEOUT_S = 120


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start(
    stack: ExitStack,
    name: str,
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    url: str = "",
    probe: str | None = None,
) -> Running:
    """Start a process in its own session, stopped when `stack` closes; wait for `probe`."""
    log = cwd / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = Running(name, process, log, url)
    stack.callback(stop_process, process)
    if probe is not None:

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{running.tail()}")
            try:
                return httpx.get(url + probe, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, START_TIMEOUT_S, f"{name} at {url}{probe}")
    return running


def api(call: Callable[[Any], Any]) -> Any:
    """Run one call with a Prefect client against the session's server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return call(client)


def alert_events(since: float) -> list[Any]:
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter
    from prefect.types._datetime import from_timestamp

    found = api(
        lambda c: c.request(
            "POST",
            "/events/filter",
            json={
                "filter": EventFilter(
                    event=EventNameFilter(name=["flywheel.alert.firing"]),
                    occurred=EventOccurredFilter(since=from_timestamp(since)),
                ).model_dump(mode="json"),
                "limit": 50,
            },
        )
    )
    return found.json()["events"]


def receiver_headers(root: Path) -> dict[str, str]:
    """What Alertmanager sends: the token `flywheel alert-receiver` generated under `root`."""
    token = (root / ".flywheel" / "alert-receiver.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def notification(
    status: str, alerts: list[dict[str, str]], group: str, starts: str = "2026-01-01T00:00:00Z"
) -> dict[str, Any]:
    """An Alertmanager v4 webhook body, as Alertmanager sends it."""
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "flywheel-retrain",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"{i:016x}",
            }
            for i, labels in enumerate(alerts)
        ],
    }
