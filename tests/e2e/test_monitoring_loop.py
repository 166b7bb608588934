"""The monitoring loop on loopback with real processes, hop by hop.

`prefect deploy --all` registers the project's deployments and the retraining automation on a
real Prefect server; `flywheel alert-receiver` turns Alertmanager's webhooks into Prefect events,
the automation turns an event into a training run with its reason, and a real process worker
runs it: the new version is gated against the served champion, and the service hot-swaps it
(drift) or the champion is kept (decay). The outcomes are arranged, not left to chance: the
first champion is trained on shuffled labels (any real retrain beats it), and the decay retrain
is the same logreg on the same data as the champion it meets: the very same model file, which
is not registered again. Tests run in file order and share the servers (module fixtures stop
every process they start, also on failure).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerting import Running, alert_events, api, notification, receiver_headers, start
from tests.conftest import REPO, cli_command, make_project, require_program, run_cli
from tests.integration.serving.conftest import (
    Registry,
    Server,
    _train_and_log,
    free_port,
    sample_records,
    start_server,
    stop_server,
    wait_for,
)

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
MODEL = "flywheel-churn-test"
RUN_TIMEOUT_S = 420  # a logreg-only retrain through the worker, on a loaded 2-core machine


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

    root = make_project(
        tmp_path_factory.mktemp("loop") / "project",
        params={
            "train": {"candidates": ["logreg"]},
            "promote": {"model_name": MODEL, "bootstrap": {"resamples": 100}},
        },
        extra=("prefect.yaml", "pipelines"),
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
            cli_command("alert-receiver", "--port", str(port), "--model", MODEL),
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


def training_runs() -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter

    deployment = api(lambda c: c.read_deployment_by_name("flywheel-training/nightly"))
    return api(
        lambda c: c.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [deployment.id]}))
    )


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
    headers = {**receiver_headers(loop.root), "Content-Type": "application/json"}
    bad = httpx.post(url, content=b'{"version": "4", "status": "firing"}', headers=headers,
                     timeout=10)
    assert bad.status_code == 422
    assert "groupKey" in bad.json()["error"] and "\n" not in bad.json()["error"]
    assert httpx.post(url, content=b"not json", headers=headers, timeout=10).status_code == 422
    resolved = notification(
        "resolved",
        [{"alertname": "FlywheelFeatureDrift", "feature": "tenure"}],
        group="{}:{resolved}",
    )
    assert httpx.post(url, json=resolved, headers=headers, timeout=10).status_code == 200
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
    env: dict[str, str]  # what the monitoring flow and `flywheel monitor` run with
    registry: Registry
    worker: Running


def champion_with_profile(store: Path) -> Registry:
    """Version 1: a logistic regression fitted to shuffled labels (so the drift retrain beats
    it), with the reference profile promotion would log."""
    import mlflow

    from flywheel.config import load_params
    from flywheel.data.io import feature_frame, read_table
    from flywheel.data.spec import load_spec
    from flywheel.model import load_model
    from flywheel.monitoring.profile import ARTIFACT, build_profile

    store.mkdir(parents=True)
    registry = _train_and_log(store, shuffle_seed=7)
    spec = load_spec(REPO / "specs" / "wa_churn.yaml")
    frame = feature_frame(spec, read_table(REPO / spec.path))
    scores = load_model(store / "model.pkl").positive_proba(frame)
    client = mlflow.MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    monitor = load_params(REPO / "params.yaml").monitor
    client.log_dict(registry.run_id, build_profile(spec, frame, scores, monitor), ARTIFACT)
    registry.register(commit="c0ffee1", data_md5="data-v1")
    return registry


def loop_configs(
    tmp: Path,
    service: Server,
    exporter: str,
    alertmanager: str,
    receiver: str,
    min_labels: int,
    token_root: Path,
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
    token = token_root / ".flywheel" / "alert-receiver.token"  # as the shipped config, absolute
    retrain["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"] = str(token)
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
        params["monitor"].update(min_rows=100, resamples=100, min_labelled_rows=MIN_LABELS)
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
        prometheus = start_monitoring(stack, tmp, env, service, loop.receiver.url, loop.root)
        worker = start_worker(stack, tmp, {**loop.env, **{k: env[k] for k in TRACKING}})
        yield Stack(
            service=service,
            prometheus=prometheus,
            records=sample_records(),
            env=env,
            registry=registry,
            worker=worker,
        )


TRACKING = ("FLYWHEEL_TRACKING_URI", "MLFLOW_TRACKING_URI")


def start_monitoring(
    stack: ExitStack, tmp: Path, env: dict[str, str], service: Server, receiver: str, root: Path
) -> str:
    """The exporter, Alertmanager and Prometheus, wired to each other and to `receiver`;
    returns Prometheus's URL."""
    ports = {name: free_port() for name in ("exporter", "alertmanager", "prometheus")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    prom_file, am_file = loop_configs(
        tmp,
        service,
        urls["exporter"],
        f"127.0.0.1:{ports['alertmanager']}",
        receiver,
        MIN_LABELS,
        root,
    )
    start(
        stack,
        "exporter",
        cli_command("monitor-exporter", "--port", str(ports["exporter"])),
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
    return urls["prometheus"]


def start_worker(stack: ExitStack, tmp: Path, env: dict[str, str]) -> Running:
    """A process worker on the pool the training deployment uses, started outside the
    project (the deployment knows its folder) and writing to the champion's registry."""
    folder = tmp / "worker"
    folder.mkdir()
    env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "2", "DVC_SITE_CACHE_DIR": str(tmp / "dvc")}
    args = [str(BIN / "prefect"), "worker", "start", "--pool", "default", "--type", "process"]
    worker = start(stack, "worker", args, cwd=folder, env=env)
    # A process worker ignores the first SIGTERM while it waits for runs: send one first.
    stack.callback(lambda: worker.process.poll() is None and os.killpg(worker.process.pid, 15))
    return worker


def promql(stack: Stack, query: str) -> list[dict[str, Any]]:
    answer = httpx.get(stack.prometheus + "/api/v1/query", params={"query": query}, timeout=10)
    assert answer.status_code == 200, f"{query}: {answer.text}"
    return list(answer.json()["data"]["result"])


def alerts(stack: Stack, name: str) -> list[dict[str, Any]]:
    found = httpx.get(stack.prometheus + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return [a for a in found if a["labels"]["alertname"] == name]


def send(stack: Stack, records: list[dict[str, Any]], batch: int = 50) -> None:
    """Predictions in batches; waits (bounded) until the inference log holds them."""
    client = stack.service.client
    ids = []
    for n in range(0, len(records), batch):
        answer = client.post("/predict", json=records[n : n + batch])
        assert answer.status_code == 200, answer.text
        ids.append(answer.headers["x-request-id"])  # issued by the server
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
        send(stack, stack.records)
        summary = run_monitoring(stack)
        assert summary["rows"] >= 200 * (window + 1) and summary["drifted"] is False
        assert summary["retrain_reason"] is None and summary["retrain_event"] is None
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


def monitor_cli(stack: Stack) -> dict[str, Any]:
    """`flywheel monitor --json` as an operator runs it: writes the report the exporter serves
    and, unlike the monitoring flow, emits nothing, so what follows comes from the alert."""
    import json

    root = Path(stack.env["FLYWHEEL_ROOT"])
    done = run_cli(root, "monitor", "--json", base=stack.env, cwd=stack.service.home.parent)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def run_started_by(alertname: str) -> Any:
    """The one training run whose reason names `alertname` (waits, bounded, for it)."""
    runs = wait_for(
        lambda: [r for r in training_runs() if alertname in r.parameters["reason"]],
        90,
        f"a training run started by {alertname}",
    )
    assert len(runs) == 1, [r.parameters for r in runs]
    return runs[0]


def finished(stack: Stack, run: Any) -> Any:
    """The run once the worker has taken it to a final state (bounded)."""

    def final() -> Any:
        assert stack.worker.process.poll() is None, stack.worker.tail()
        now = api(lambda c: c.read_flow_run(run.id))
        return now if now.state is not None and now.state.is_final() else None

    done = wait_for(final, RUN_TIMEOUT_S, f"training run {run.id} to finish")
    assert done.state.is_completed(), f"{done.state}:\n{stack.worker.tail()}"
    return done


def version_tags(stack: Stack, version: str) -> dict[str, str]:
    found = stack.registry.client().get_model_version(MODEL, version)
    return dict(found.tags)


def serving(stack: Stack) -> str:
    return str(stack.service.client.get("/metadata").json()["model_version"])


def test_drift_alert_retrains_and_the_service_hot_swaps_the_new_champion(
    stack: Stack, loop: Loop
) -> None:
    since = time.time() - 5
    for _ in range(4):
        send(stack, drifted(stack.records))
    report = monitor_cli(stack)
    assert report["drifted"] is True
    assert report["features"]["monthly_charges"]["drifted"] is True
    assert report["features"]["contract"]["drifted"] is True
    # The exporter's gauges fire the alert in Prometheus; Alertmanager sends it to the
    # receiver, whose event makes the automation start a run with the alert as its reason.
    firing = wait_for(
        lambda: [a for a in alerts(stack, "FlywheelFeatureDrift") if a["state"] == "firing"],
        60,
        "FlywheelFeatureDrift firing",
    )
    assert {"monthly_charges", "contract"} <= {a["labels"]["feature"] for a in firing}
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
    run = run_started_by("Drift")  # feature and score drift are two groups: one run in all
    assert re.fullmatch(
        r"alert: Flywheel(Feature|Score)Drift .*model_version=1.*", run.parameters["reason"]
    )
    # The worker runs it: the new version carries the reason and its verdict, and the
    # service (reloading every second) answers with it.
    finished(stack, run)
    tags = version_tags(stack, "2")
    assert tags["flywheel.retrain_reason"] == run.parameters["reason"]
    assert tags["flywheel.prefect_flow_run_id"] == str(run.id)
    assert tags["flywheel.gate.verdict"] == "promoted", tags["flywheel.gate.reason"]
    wait_for(lambda: serving(stack) == "2", 60, "the service to hot-swap to version 2")
    wait_for(
        lambda: promql(stack, 'flywheel_model_info{model_version="2"} == 1'),
        30,
        "Prometheus to see the service answer with version 2",
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
    headers = receiver_headers(loop.root)
    assert httpx.post(url, json=body, headers=headers, timeout=30).status_code == 202
    again = httpx.post(url, json=body, headers=headers, timeout=30)  # the group repeated
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


def end_cooldown() -> None:
    """What the next cool-down window brings, now: the automation recreated from its own
    definition (a new trigger, no memory of the last run)."""
    from prefect.events.schemas.automations import AutomationCore

    [automation] = api(lambda c: c.read_automations_by_name("flywheel-retrain-on-alert"))
    definition = automation.model_dump(exclude={"id", "created", "updated"})
    definition["trigger"].pop("id", None)
    api(lambda c: c.delete_automation(automation.id))
    api(lambda c: c.create_automation(AutomationCore.model_validate(definition)))


def test_decay_alert_retrains_and_the_refused_version_keeps_the_champion(
    stack: Stack, loop: Loop
) -> None:
    end_cooldown()
    since = time.time() - 5
    client = stack.service.client
    answered = []
    for record in stack.records[:60]:
        answer = client.post("/predict", json=record)
        assert answer.status_code == 200, answer.text
        answered.append((answer.headers["x-request-id"], answer.json()[0]["prediction"]))
    wait_for(
        lambda: {i for i, _ in answered} <= logged_ids(stack.service.log_dir),
        60,
        "the labelled requests in the inference log",
    )
    # The world changed: every label is the opposite of what the model said.
    labels = [{"request_id": i, "label": "No" if said == "Yes" else "Yes"} for i, said in answered]
    stored = client.post("/feedback", json=labels, headers=stack.service.auth("feedback"))
    assert stored.status_code == 200 and stored.json() == {"accepted": 60}
    assert monitor_cli(stack)["live"]["decayed"] is True
    firing = wait_for(
        lambda: [a for a in alerts(stack, "FlywheelLiveMetricDecay") if a["state"] == "firing"],
        60,
        "FlywheelLiveMetricDecay firing",
    )
    assert "roc_auc" in {a["labels"]["metric"] for a in firing}
    run = run_started_by("FlywheelLiveMetricDecay")
    assert "FlywheelLiveMetricDecay metric=roc_auc model_version=2" in run.parameters["reason"]
    # The monitoring flow sees the same decay and asks too: one cool-down for both ways in.
    before = len(training_runs())
    summary = run_monitoring(stack)
    assert summary["decayed"] is True and summary["retrain_event"]
    assert re.search(r"decay: .*roc_auc=0\.\d+ \(floor 0\.75\)", summary["retrain_reason"])
    wait_for(
        lambda: [e for e in alert_events(since) if e["id"] == summary["retrain_event"]],
        30,
        "the monitoring flow's event in Prefect",
    )
    time.sleep(3)  # the trigger service acts within a second when it acts
    assert len(training_runs()) == before
    # The retrain is the champion's twin, byte for byte: nothing is registered (issue 20).
    finished(stack, run)
    registered = stack.registry.client().search_model_versions(f"name='{MODEL}'")
    assert sorted(str(v.version) for v in registered) == ["1", "2"]
    champion = stack.registry.client().get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "2" and serving(stack) == "2"


# Series the rules and dashboard read that this loop cannot produce: it serves one binary
# model and no challenger. Each name says the setting it needs; every other name is required.
_SHADOW = "a challenger alias shadowing the champion (series labelled by challenger_version)"
_CANARY = "a version on canary (tests/integration/serving/test_canary.py)"
NOT_IN_THIS_SETTING = {
    "flywheel_shadow_requests_total": _SHADOW,
    "flywheel_shadow_errors_total": _SHADOW,
    "flywheel_shadow_latency_seconds_bucket": _SHADOW,
    "flywheel_shadow_records_total": _SHADOW,
    "flywheel_shadow_agreeing_records_total": _SHADOW,
    "flywheel_shadow_score_distance_count": _SHADOW,
    "flywheel_shadow_score_distance_sum": _SHADOW,
    "flywheel_canary_share": _CANARY,
    "flywheel:canary_latency_ratio:rate1m": _CANARY,
    "flywheel_canary_rolled_back_timestamp_seconds": _CANARY + ", rolled back",
    "flywheel_predicted_value_bucket": "a regression model (predicted values, no classes)",
    "flywheel_class_probability_bucket": "a multiclass model (one probability per class)",
}


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
    assert set(NOT_IN_THIS_SETTING) <= used, "an exemption for a metric nothing reads"

    def missing() -> set[str]:
        names = httpx.get(stack.prometheus + "/api/v1/label/__name__/values", timeout=10)
        return used - set(NOT_IN_THIS_SETTING) - set(names.json()["data"])

    wait_for(lambda: not missing(), 30, f"every metric the rules and dashboard use: {missing()}")
