"""The monitoring loop on loopback with real processes, hop by hop.

`prefect deploy --all` registers the project's deployments and the retraining automation on a
real Prefect server; `flywheel alert-receiver` turns Alertmanager's webhooks into Prefect events
and the automation turns an event into a training run with its reason. Tests run in file order
and share the servers (module fixtures stop every process they start, also on failure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, make_project
from tests.integration.serving.conftest import free_port, stop_process, wait_for

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
MODEL = "flywheel-churn-test"
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


def prefect_cli(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass
class Loop:
    root: Path
    env: dict[str, str]
    receiver: Running


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Iterator[Loop]:
    """The project's deployments and automation on the session's Prefect server, and the
    alert receiver pointed at it."""
    from prefect.settings import PREFECT_API_URL

    root = make_project(tmp_path_factory.mktemp("loop") / "project")
    shutil.copy2(REPO / "prefect.yaml", root / "prefect.yaml")
    shutil.copytree(
        REPO / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "FLYWHEEL_ROOT": str(root),
        "PYTHONPATH": str(root),
    }
    create_pools("default", "gpu")
    prefect_cli(root, env, "deploy", "--all")
    with ExitStack() as stack:
        port = free_port()
        receiver = start(
            stack,
            "receiver",
            [str(BIN / "flywheel"), "alert-receiver", "--port", str(port), "--model", MODEL],
            cwd=root,
            env=env,
            url=f"http://127.0.0.1:{port}",
            probe="/healthz",
        )
        yield Loop(root=root, env=env, receiver=receiver)


def create_pools(*names: str) -> None:
    """The work pools prefect.yaml names (what `flywheel deploy` creates)."""
    from prefect.client.schemas.actions import WorkPoolCreate

    for name in names:
        api(
            lambda c, n=name: c.create_work_pool(
                WorkPoolCreate(name=n, type="process"), overwrite=True
            )
        )


def api(call: Callable[[Any], Any]) -> Any:
    """Run one call with a Prefect client against the session's server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return call(client)


def training_runs() -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter

    deployment = api(lambda c: c.read_deployment_by_name("flywheel-training/nightly"))
    return api(
        lambda c: c.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [deployment.id]}))
    )


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
                "fingerprint": f"fp-{i}",
            }
            for i, labels in enumerate(alerts)
        ],
    }


def receiver_counts(loop: Loop) -> dict[str, float]:
    text = httpx.get(loop.receiver.url + "/metrics/", timeout=5).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("flywheel_alert_receiver_notifications_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            counts[outcome] = float(line.rsplit(" ", 1)[1])
    return counts


def test_deploy_registers_monitoring_and_the_retraining_automation(loop: Loop) -> None:
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    training = api(lambda c: c.read_deployment_by_name("flywheel-training/nightly"))
    assert training.global_concurrency_limit.limit == 1
    assert training.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
    hourly = api(lambda c: c.read_deployment_by_name("flywheel-monitoring/hourly"))
    assert hourly.schedules and hourly.schedules[0].schedule.cron == "0 * * * *"
    [automation] = api(lambda c: c.read_automations_by_name("flywheel-retrain-on-alert"))
    assert automation.enabled
    assert automation.trigger.expect == {"flywheel.alert.firing"}
    assert automation.trigger.within.total_seconds() == 6 * 3600
    assert automation.actions[0].deployment_id == training.id


def test_bad_and_resolved_notifications_start_nothing(loop: Loop) -> None:
    url = loop.receiver.url + "/alerts"
    bad = httpx.post(url, content=b'{"version": "4", "status": "firing"}', timeout=10)
    assert bad.status_code == 422
    assert "groupKey" in bad.json()["error"] and "\n" not in bad.json()["error"]
    assert httpx.post(url, content=b"not json", timeout=10).status_code == 422
    resolved = notification(
        "resolved",
        [{"alertname": "FlywheelFeatureDrift", "feature": "tenure"}],
        group="{}:{resolved}",
    )
    assert httpx.post(url, json=resolved, timeout=10).status_code == 200
    counts = receiver_counts(loop)
    assert counts.get("invalid") == 2 and counts.get("resolved") == 1
    assert counts.get("emitted", 0) == 0
    assert training_runs() == []


def test_firing_alert_starts_one_training_run_with_its_reason(loop: Loop) -> None:
    since = time.time() - 5
    url = loop.receiver.url + "/alerts"
    body = notification(
        "firing",
        [
            {
                "alertname": "FlywheelFeatureDrift",
                "feature": "tenure",
                "model_version": "1",
                "action": "retrain",
            }
        ],
        group='{}/{action="retrain"}:{alertname="FlywheelFeatureDrift"}',
    )
    first = httpx.post(url, json=body, timeout=30)
    assert first.status_code == 202, first.text
    again = httpx.post(url, json=body, timeout=30)  # Alertmanager's repeat of the same group
    assert again.status_code == 200 and "already handled" in again.text
    runs = wait_for(training_runs, 60, "a training run created by the automation")
    assert len(runs) == 1
    reason = runs[0].parameters["reason"]
    assert reason == "alert: FlywheelFeatureDrift feature=tenure model_version=1"
    events = wait_for(lambda: alert_events(since), 30, "the event in Prefect")
    assert len(events) == 1 and events[0]["payload"]["alertnames"] == ["FlywheelFeatureDrift"]

    # Another group fires inside the cool-down: its event arrives, no second run starts.
    other = notification(
        "firing",
        [{"alertname": "FlywheelScoreDrift", "model_version": "1", "action": "retrain"}],
        group='{}/{action="retrain"}:{alertname="FlywheelScoreDrift"}',
    )
    assert httpx.post(url, json=other, timeout=30).status_code == 202
    wait_for(lambda: len(alert_events(since)) == 2, 30, "the second event in Prefect")
    time.sleep(3)  # give the trigger service time to act on it, were it going to
    assert len(training_runs()) == 1
    assert receiver_counts(loop)["duplicate"] == 1
