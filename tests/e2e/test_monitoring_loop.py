"""The monitoring loop on loopback with real processes, hop by hop.

`prefect deploy --all` registers the project's deployments and the retraining automation on a
real Prefect server; `flywheel alert-receiver` turns Alertmanager's webhooks into Prefect events
and the automation turns an event into a training run with its reason. Tests run in file order
and share the servers (module fixtures stop every process they start, also on failure).
"""

from __future__ import annotations

import os
import re
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

from tests.conftest import REPO, make_project, require_program
from tests.integration.serving.conftest import (
    Registry,
    Server,
    _train_and_log,
    free_port,
    sample_records,
    start_server,
    stop_process,
    stop_server,
    wait_for,
)

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


# --- the loop: service -> Prometheus -> monitoring flow -> exporter -> alert -> retraining ----


@dataclass
class Stack:
    service: Server
    prometheus: str
    records: list[dict[str, Any]]
    env: dict[str, str]  # what the monitoring flow runs with


def champion_with_profile(store: Path) -> Registry:
    """Version 1 of a logistic regression, with the reference profile promotion would log."""
    import mlflow

    from flywheel.data.io import feature_frame, read_table
    from flywheel.data.spec import load_spec
    from flywheel.model import load_model
    from flywheel.monitoring.profile import ARTIFACT, build_profile

    store.mkdir(parents=True)
    registry = _train_and_log(store)
    spec = load_spec(REPO / "specs" / "wa_churn.yaml")
    frame = feature_frame(spec, read_table(REPO / spec.path))
    scores = load_model(store / "model.pkl").positive_proba(frame)
    client = mlflow.MlflowClient(tracking_uri=registry.uri)
    client.log_dict(registry.run_id, build_profile(spec, frame, scores, 10), ARTIFACT)
    registry.register(commit="c0ffee1", data_md5="data-v1")
    return registry


def loop_configs(
    tmp: Path, service: Server, exporter: str, alertmanager: str, receiver: str, min_labels: int
) -> tuple[Path, Path]:
    """Copies of infra/ for the test: 1 s scrapes and evaluations, `for:` of 1 s, loopback
    ports; the rules and routes themselves are the shipped ones."""
    import yaml

    rules = (REPO / "infra/prometheus/rules/alerts.yml").read_text()
    rules = re.sub(r"for: \w+", "for: 1s", rules).replace(">= 200", f">= {min_labels}")
    (tmp / "rules").mkdir()
    (tmp / "rules" / "alerts.yml").write_text(rules)
    shutil.copy2(REPO / "infra/prometheus/rules/recording.yml", tmp / "rules" / "recording.yml")
    prom = yaml.safe_load((REPO / "infra/prometheus/prometheus.yml").read_text())
    prom["global"].update(scrape_interval="1s", evaluation_interval="1s")
    prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    targets = {"flywheel-service": service.url, "flywheel-monitor": exporter}
    for job in prom["scrape_configs"]:
        job["static_configs"][0]["targets"] = [targets[job["job_name"]].split("//")[1]]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom))
    am = yaml.safe_load((REPO / "infra/alertmanager/alertmanager.yml").read_text())
    am["route"].update(group_wait="1s", group_interval="1s")
    am["route"]["routes"][0]["receiver"] = "flywheel-retrain"
    retrain = next(r for r in am["receivers"] if r["name"] == "flywheel-retrain")
    retrain["webhook_configs"][0]["url"] = receiver + "/alerts"
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am))
    return tmp / "prometheus.yml", tmp / "alertmanager.yml"


MIN_LABELS = 40


@pytest.fixture(scope="module")
def stack(loop: Loop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import yaml

    tmp = tmp_path_factory.mktemp("stack")
    registry = champion_with_profile(tmp / "registry")
    dirs = {name: tmp / name for name in ("inference-log", "feedback", "monitor")}
    with ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLYWHEEL_FEEDBACK_DIR", str(dirs["feedback"]))
        service = start_server(tmp / "service", registry, log_dir=dirs["inference-log"])
        stack.callback(stop_server, service)
        params = yaml.safe_load((tmp / "service" / "params.yaml").read_text())
        params["monitor"].update(min_rows=100, resamples=50, min_labelled_rows=MIN_LABELS)
        (tmp / "monitor-params.yaml").write_text(yaml.safe_dump(params))
        env = {
            **loop.env,
            "FLYWHEEL_PARAMS_FILE": str(tmp / "monitor-params.yaml"),
            "FLYWHEEL_TRACKING_URI": registry.uri,
            "MLFLOW_TRACKING_URI": registry.uri,
            "FLYWHEEL_INFERENCE_LOG_DIR": str(dirs["inference-log"]),
            "FLYWHEEL_FEEDBACK_DIR": str(dirs["feedback"]),
            "FLYWHEEL_MONITOR_DIR": str(dirs["monitor"]),
        }
        ports = {name: free_port() for name in ("exporter", "alertmanager", "prometheus")}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        prom_file, am_file = loop_configs(
            tmp,
            service,
            urls["exporter"],
            f"127.0.0.1:{ports['alertmanager']}",
            loop.receiver.url,
            MIN_LABELS,
        )
        start(
            stack,
            "exporter",
            [str(BIN / "flywheel"), "monitor-exporter", "--port", str(ports["exporter"])],
            cwd=tmp,
            env=env,
            url=urls["exporter"],
            probe="/metrics",
        )
        start(
            stack,
            "alertmanager",
            [
                require_program("prometheus-alertmanager"),
                f"--config.file={am_file}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",
                f"--storage.path={tmp / 'am-data'}",
            ],
            cwd=tmp,
            env=env,
            url=urls["alertmanager"],
            probe="/-/ready",
        )
        start(
            stack,
            "prometheus",
            [
                require_program("prometheus"),
                f"--config.file={prom_file}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                f"--storage.tsdb.path={tmp / 'prom-data'}",
            ],
            cwd=tmp,
            env=env,
            url=urls["prometheus"],
            probe="/-/ready",
        )
        yield Stack(
            service=service, prometheus=urls["prometheus"], records=sample_records(), env=env
        )


def promql(stack: Stack, query: str) -> list[dict[str, Any]]:
    answer = httpx.get(stack.prometheus + "/api/v1/query", params={"query": query}, timeout=10)
    assert answer.status_code == 200, f"{query}: {answer.text}"
    return list(answer.json()["data"]["result"])


def alerts(stack: Stack, name: str) -> list[dict[str, Any]]:
    found = httpx.get(stack.prometheus + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return [a for a in found if a["labels"]["alertname"] == name]


def send(stack: Stack, records: list[dict[str, Any]], prefix: str, batch: int = 50) -> None:
    """Predictions in batches; waits (bounded) until the inference log holds them."""
    client = stack.service.client
    ids = []
    for n in range(0, len(records), batch):
        request_id = f"{prefix}-{n}"
        answer = client.post(
            "/predict", json=records[n : n + batch], headers={"X-Request-ID": request_id}
        )
        assert answer.status_code == 200, answer.text
        ids.append(request_id)
    wait_for(lambda: set(ids) <= logged_ids(stack.service.log_dir), 60, "the inference log")


def logged_ids(folder: Path) -> set[str]:
    import pyarrow.parquet as pq

    return {
        i
        for path in folder.glob("*.parquet")
        for i in pq.read_table(path, columns=["request_id"]).column(0).to_pylist()
    }


def run_monitoring(stack: Stack) -> dict[str, Any]:
    """The monitoring flow, in this process against the session's Prefect server."""
    import mlflow

    from pipelines.monitoring import monitoring

    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in stack.env.items():
            if key.startswith(("FLYWHEEL_", "MLFLOW_")):
                patch.setenv(key, value)
        try:
            return monitoring()
        finally:
            mlflow.set_tracking_uri(previous)


def drifted(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A realistic shift: charges up 60%, month-to-month and two-year contracts swapped."""
    swap = {"Month-to-month": "Two year", "Two year": "Month-to-month"}
    return [
        {
            **r,
            "monthly_charges": round(r["monthly_charges"] * 1.6, 2),
            "contract": swap.get(r["contract"], r["contract"]),
        }
        for r in records
    ]


def test_clean_traffic_raises_no_alert(stack: Stack) -> None:
    for window in range(2):
        send(stack, stack.records, f"clean-{window}")
        summary = run_monitoring(stack)
        assert summary["rows"] >= 200 * (window + 1) and summary["drifted"] is False
        assert summary["retrain_reason"] is None and summary["training_run"] is None
    # Prometheus scraped the service and the exporter's fresh report ...
    wait_for(
        lambda: promql(stack, "flywheel_drift_window_rows >= 400"),
        30,
        "the exporter's report in Prometheus",
    )
    # ... and the service's counters (their scrape may land a moment after the exporter's)
    wait_for(
        lambda: promql(stack, "sum(flywheel_predictions_total) >= 400"),
        30,
        "the service's prediction counters in Prometheus",
    )
    assert promql(stack, "max(flywheel_feature_drifted) == 0")
    time.sleep(3)  # a few rule evaluations (1 s, `for: 1s`) on the clean report
    assert alerts(stack, "FlywheelFeatureDrift") == []
    assert alerts(stack, "FlywheelScoreDrift") == []
    assert training_runs() == []


def test_drift_fires_the_alert_and_starts_retraining_with_its_reason(
    stack: Stack, loop: Loop
) -> None:
    since = time.time() - 5
    for window in range(4):
        send(stack, drifted(stack.records), f"drifted-{window}")
    summary = run_monitoring(stack)
    assert summary["drifted"] is True
    assert summary["retrain_reason"].startswith("monitor: drift: ")
    assert "monthly_charges" in summary["retrain_reason"]
    assert "contract" in summary["retrain_reason"]
    # The flow started the training deployment itself, with the reason ...
    direct = [r for r in training_runs() if r.parameters["reason"].startswith("monitor:")]
    assert [str(r.id) for r in direct] == [summary["training_run"]]
    # ... and the exporter's gauges fire the alert in Prometheus, which Alertmanager sends to
    # the receiver, whose event makes the automation start a run with the alert as reason.
    firing = wait_for(
        lambda: [a for a in alerts(stack, "FlywheelFeatureDrift") if a["state"] == "firing"],
        60,
        "FlywheelFeatureDrift firing",
    )
    assert {"monthly_charges", "contract"} <= {a["labels"]["feature"] for a in firing}
    by_alert = wait_for(
        lambda: [r for r in training_runs() if r.parameters["reason"].startswith("alert:")],
        90,
        "a training run started by the alert",
    )
    assert len(by_alert) == 1  # feature and score drift are two groups: one run in all
    assert re.fullmatch(
        r"alert: Flywheel(Feature|Score)Drift .*model_version=1.*", by_alert[0].parameters["reason"]
    )
    events = wait_for(
        lambda: [
            e for e in alert_events(since) if "FlywheelFeatureDrift" in e["payload"]["alertnames"]
        ],
        60,
        "the feature drift event in Prefect",
    )
    assert (
        "FlywheelFeatureDrift feature=monthly_charges model_version=1"
        in (events[0]["payload"]["reason"])
    )


def test_a_second_firing_inside_the_cooldown_starts_no_second_run(stack: Stack, loop: Loop) -> None:
    since = time.time() - 5
    before = len(training_runs())
    url = loop.receiver.url + "/alerts"
    body = notification(
        "firing",
        [{"alertname": "FlywheelScoreDrift", "model_version": "1", "action": "retrain"}],
        group="{}:{second-firing}",
    )
    assert httpx.post(url, json=body, timeout=30).status_code == 202
    again = httpx.post(url, json=body, timeout=30)  # Alertmanager repeating the group
    assert again.status_code == 200 and "already handled" in again.text
    wait_for(
        lambda: [
            e for e in alert_events(since) if e["payload"]["group_key"] == "{}:{second-firing}"
        ],
        30,
        "the second firing's event in Prefect",
    )
    time.sleep(3)  # the trigger service acts within a second when it acts
    assert len(training_runs()) == before
    # The monitoring flow, run again on the same drift, returns the run it already started.
    first = [r for r in training_runs() if r.parameters["reason"].startswith("monitor:")]
    assert run_monitoring(stack)["training_run"] == str(first[0].id)
    assert len(training_runs()) == before


def test_decay_through_feedback_reaches_prefect_as_an_alert(stack: Stack, loop: Loop) -> None:
    since = time.time() - 5
    client = stack.service.client
    answered = []
    for n, record in enumerate(stack.records[:60]):
        answer = client.post("/predict", json=record, headers={"X-Request-ID": f"decay-{n}"})
        assert answer.status_code == 200, answer.text
        answered.append((f"decay-{n}", answer.json()[0]["prediction"]))
    wait_for(
        lambda: {i for i, _ in answered} <= logged_ids(stack.service.log_dir),
        60,
        "the labelled requests in the inference log",
    )
    # The world changed: every label is the opposite of what the model said.
    labels = [{"request_id": i, "label": "No" if said == "Yes" else "Yes"} for i, said in answered]
    stored = client.post("/feedback", json=labels)
    assert stored.status_code == 200 and stored.json() == {"accepted": 60}
    summary = run_monitoring(stack)
    assert summary["decayed"] is True
    assert re.search(r"decay: .*roc_auc=0\.\d+ \(floor 0\.75\)", summary["retrain_reason"])
    firing = wait_for(
        lambda: [a for a in alerts(stack, "FlywheelLiveMetricDecay") if a["state"] == "firing"],
        60,
        "FlywheelLiveMetricDecay firing",
    )
    assert "roc_auc" in {a["labels"]["metric"] for a in firing}
    events = wait_for(
        lambda: [
            e
            for e in alert_events(since)
            if "FlywheelLiveMetricDecay" in e["payload"]["alertnames"]
        ],
        60,
        "the decay event in Prefect",
    )
    assert (
        "FlywheelLiveMetricDecay metric=roc_auc model_version=1" in (events[0]["payload"]["reason"])
    )


def test_dashboard_queries_run_on_prometheus_and_name_scraped_metrics(stack: Stack) -> None:
    from tests.integration.test_prometheus_rules import alert_rules, dashboard_exprs
    from tests.promql import metric_names

    assert stack.service.client.post("/predict", json={"tenure": "long"}).status_code == 422
    for expr in dashboard_exprs():
        promql(stack, expr)  # a query Prometheus refuses answers 400
    used = set().union(
        *(metric_names(e) for e in dashboard_exprs()),
        *(metric_names(r["expr"]) for r in alert_rules()),
    )

    def missing() -> set[str]:
        names = httpx.get(stack.prometheus + "/api/v1/label/__name__/values", timeout=10)
        return used - set(names.json()["data"])

    wait_for(lambda: not missing(), 30, f"every metric the rules and dashboard use: {missing()}")
