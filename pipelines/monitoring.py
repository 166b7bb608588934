"""The monitoring flow: drift and decay of the served model, and retraining when they cross
their thresholds.

Deployed hourly (`flywheel-monitoring/hourly` in prefect.yaml). Each run computes the report over
the inference log with `flywheel.monitoring`, writes it where `flywheel monitor-exporter` reads
it (so the Prometheus gauges follow), logs it to MLflow, and when drift or decay is found starts
the training deployment with the reason as a parameter. At most one retraining run starts per
cool-down window (`monitor.retrain_cooldown_minutes`): the run's idempotency key is the window,
so Prefect returns the existing run instead of creating a second one.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from prefect import flow, task

from flywheel.errors import ConfigError

logger = logging.getLogger(__name__)

TRAINING_DEPLOYMENT = "flywheel-training/nightly"


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
    from flywheel.monitoring.report import compute_report, write_report
    from flywheel.settings import settings

    current = settings()
    report = compute_report(current, load_params(current.params_path), model_name)
    write_report(report, current.monitor)
    return report


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


@task(task_run_name="start-training")
def start_training(reason: str, cooldown_minutes: float) -> str:
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        run = run_deployment(
            TRAINING_DEPLOYMENT,
            parameters={"reason": reason},
            timeout=0,
            as_subflow=False,
            idempotency_key=cooldown_key(cooldown_minutes),
        )
    except ObjectNotFound:
        raise ConfigError(
            f"deployment {TRAINING_DEPLOYMENT} is not on the Prefect server, so retraining "
            f"({reason}) cannot start; register it with `prefect deploy --all`"
        ) from None
    logger.info("training run %s (%s)", run.id, reason)
    return str(run.id)


@flow(name="flywheel-monitoring")
def monitoring(model_name: str | None = None) -> dict[str, Any]:
    """Report, log, and retrain when drift or decay says so. Returns a short summary."""
    from flywheel.config import load_params
    from flywheel.settings import settings

    report = compute(model_name)
    run_id = log_report(report)
    reason = retrain_reason(report)
    training_run = None
    if reason is not None:
        cooldown = load_params(settings().params_path).monitor.retrain_cooldown_minutes
        training_run = start_training(reason, cooldown)
    return {
        "model_version": report["model_version"],
        "rows": report["window"]["rows"],
        "drifted": report["drifted"],
        "decayed": bool((report.get("live") or {}).get("decayed")),
        "mlflow_run_id": run_id,
        "retrain_reason": reason,
        "training_run": training_run,
    }
