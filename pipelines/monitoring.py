"""The monitoring flow: drift and decay of the served model, and retraining when they cross
their thresholds.

Deployed hourly (`flywheel-monitoring/hourly` in prefect.yaml). Each run computes the report over
the inference log with `flywheel.monitoring`, writes it where `flywheel monitor-exporter` reads
it (so the Prometheus gauges follow), logs it to MLflow, and when drift or decay is found emits
the retraining event that `flywheel alert-receiver` also emits (`pipelines/retrain_event.py`).
It does not start the training deployment itself: the one automation in prefect.yaml does, so
the flow and a Prometheus alert about the same drift share one cool-down (its `within`). The
event id is one per model and `monitor.retrain_cooldown_minutes` window, so hourly runs on a
lasting drift repeat the same event rather than stacking new ones.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, task

from pipelines.retrain_event import EVENT, emit, retrain_event

logger = logging.getLogger(__name__)

_EVENT_NAMESPACE = uuid.UUID("8c5e2f4a-1b7d-4e0a-9f3c-6d2b7a1e5c90")


def retrain_reason(report: dict[str, Any]) -> str | None:
    """Why to retrain, in one line for the run's parameters and lineage; None when healthy."""
    reasons = []
    if report.get("enough_traffic") and report.get("drifted"):
        features = sorted(n for n, f in report.get("features", {}).items() if f.get("drifted"))
        if report.get("score", {}).get("drifted"):
            features.append("score")
        reasons.append(f"drift: {', '.join(features) or 'window'}")
    live = report.get("live") or {}
    if live.get("decayed"):
        detail = ", ".join(
            f"{metric}={live[metric]:.3f} (floor {live['floors'][metric]})"
            for metric in live.get("breaches", [])
            if live.get(metric) is not None and metric in live.get("floors", {})
        )
        reasons.append(f"decay: {detail or 'live metrics past their floors'}")
    if not reasons:
        return None
    return f"monitor: {'; '.join(reasons)} (model version {report.get('model_version')})"


def cooldown_key(cooldown_minutes: float, now: float | None = None) -> str | None:
    """The same key for every call inside one cool-down window (None: no cool-down)."""
    if cooldown_minutes <= 0:
        return None
    window = int((time.time() if now is None else now) // (cooldown_minutes * 60))
    return f"flywheel-retrain-{cooldown_minutes:g}m-{window}"


@task(task_run_name="compute-report")
def compute(model_name: str | None) -> dict[str, Any]:
    from flywheel.config import load_params
    from flywheel.monitoring.report import report_now
    from flywheel.settings import settings

    current = settings()
    return report_now(current, load_params(current.params_path), model_name)


@task(task_run_name="log-report")
def log_report(report: dict[str, Any]) -> str:
    """One MLflow run per report in experiment `<model>-monitoring`: scores as metrics, the
    report as an artifact, so drift history sits next to the model's training runs."""
    from flywheel.registry.store import connect, ensure_experiment
    from flywheel.settings import settings

    current = settings()
    client = connect(current)
    experiment = ensure_experiment(client, f"{report['model_name']}-monitoring", current)
    run = client.create_run(
        experiment,
        tags={
            "flywheel.model_name": str(report["model_name"]),
            "flywheel.model_version": str(report["model_version"]),
            "flywheel.drifted": str(report["drifted"]).lower(),
        },
    )
    client.log_batch(run.info.run_id, metrics=_metrics(report))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        path.write_text(json.dumps(report, indent=2, default=str))
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def _metrics(report: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    values: dict[str, Any] = {
        "window_rows": report["window"]["rows"],
        "drifted": float(bool(report["drifted"])),
        "score_psi": (report.get("score") or {}).get("psi"),
    }
    for name, scores in report.get("features", {}).items():
        values[f"psi_{name}"] = scores.get("psi")
    live = report.get("live") or {}
    for metric in ("roc_auc", "pr_auc", "brier", "positive_rate"):
        values[f"live_{metric}"] = live.get(metric)
    return [
        Metric(key, float(value), stamp, 0)
        for key, value in values.items()
        if isinstance(value, int | float)
    ]


def retraining_event(
    report: dict[str, Any], reason: str, cooldown_minutes: float, now: float | None = None
) -> dict[str, Any]:
    """The event the flow emits: the receiver's event, with an id fixed per model and
    cool-down window (a lasting drift re-reported hourly repeats one event)."""
    model = str(report["model_name"])
    window = cooldown_key(cooldown_minutes, now) or str(uuid.uuid4())
    return retrain_event(
        model,
        reason,
        uuid.uuid5(_EVENT_NAMESPACE, f"{model}|{window}"),
        source="flywheel-monitoring",
        model_version=str(report["model_version"]),
    )


@task(task_run_name="request-retraining")
def request_retraining(report: dict[str, Any], reason: str, cooldown_minutes: float) -> str:
    """Emit the retraining event; the automation decides whether a run starts (cool-down)."""
    from prefect.utilities.asyncutils import run_coro_as_sync

    event = retraining_event(report, reason, cooldown_minutes)
    run_coro_as_sync(emit(event))
    logger.info("emitted %s %s (%s)", EVENT, event["id"], reason)
    return str(event["id"])


@flow(name="flywheel-monitoring")
def monitoring(model_name: str | None = None) -> dict[str, Any]:
    """Report, log, and ask for retraining when drift or decay says so. Returns a summary."""
    from flywheel.config import load_params
    from flywheel.settings import settings

    report = compute(model_name)
    run_id = log_report(report)
    reason = retrain_reason(report)
    retrain_event_id = None
    if reason is not None:
        cooldown = load_params(settings().params_path).monitor.retrain_cooldown_minutes
        retrain_event_id = request_retraining(report, reason, cooldown)
    return {
        "model_version": report["model_version"],
        "rows": report["window"]["rows"],
        "drifted": report["drifted"],
        "decayed": bool((report.get("live") or {}).get("decayed")),
        "mlflow_run_id": run_id,
        "retrain_reason": reason,
        "retrain_event": retrain_event_id,
    }
