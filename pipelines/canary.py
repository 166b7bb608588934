"""The canary controller: a Prefect flow that walks a canary through its steps, or rolls it back.

Deployed as `flywheel-canary/controller` (prefect.yaml), started by `flywheel canary run` or the
deployment; each evaluation is a task run in the UI. Every `canary.eval_seconds` it reads the
canary's and the champion's records, errors and model-call times over the step from
Prometheus, and their live accuracy where labels arrived from the inference log
(flywheel.monitoring.canary_slo), and then:

- a breach: rolls back at once (share 0, alias removed, `flywheel.canary_rolled_back_reason` on
  the version, a `flywheel.canary.rolled_back` Prefect event, an error line in the log; the
  services' `flywheel_canary_rolled_back_timestamp_seconds` fires FlywheelCanaryRolledBack);
- a step that lasted `step_seconds`, saw `min_records` canary records and timed calls and kept
  every bound, its p95 ratio over the step included: the next share, or, after the step before
  the last, promotion (champion -> the version, the old one -> `previous`);
- otherwise holds, renewing the lease.

All state is in the registry (flywheel.registry.canary): a controller that restarts carries on
from the recorded step; while none runs, the lease lapses and services route 0% to the canary.
When Prometheus does not answer, the lease is not renewed (no judgement, no traffic) and the
flow keeps trying; `max_evaluations` bounds a run (None: until the canary ends).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flywheel.errors import DataError
from flywheel.monitoring.canary_live import LiveAccuracy, LiveErrors, live_accuracy, live_errors
from flywheel.monitoring.canary_slo import (
    ADVANCE,
    PROMOTE,
    ROLLBACK,
    PrometheusUnreachable,
    evaluate,
    next_action,
)
from flywheel.registry import canary as plan
from flywheel.registry import store
from flywheel.steps.canary import canary_params, promote_canary
from flywheel.steps.context import StepContext, make_context

logger = logging.getLogger(__name__)

ROLLED_BACK_EVENT = "flywheel.canary.rolled_back"


@task(task_run_name="evaluate-canary", cache_policy=NO_CACHE)
def evaluate_once(ctx: StepContext, prometheus_url: str, seen: int) -> tuple[str, str, int]:
    """One evaluation: (what was done, why, evaluations so far that saw canary traffic).

    Never cached: each one reads the registry and Prometheus as they are now."""
    client = store.connect(ctx.settings)
    progress = plan.read_progress(client, ctx.model_name)
    if progress is None or progress.state != plan.RUNNING:
        return "ended", "no running canary", seen
    now = time.time()
    try:
        evaluation = evaluate(prometheus_url, progress, now, live_of(ctx, progress))
    except PrometheusUnreachable as exc:
        logger.warning("canary %s: %s; lease not renewed", progress.version, exc)
        return "blind", str(exc), seen
    seen += evaluation.has_traffic
    action, reason = next_action(progress, evaluation, now)
    if action == ROLLBACK:
        reason = f"{reason} (step {progress.step + 1}, evaluation {seen} with canary traffic)"
        rollback(ctx, client, progress, reason)
    elif action == PROMOTE:
        before = promote_canary(ctx, progress, reason)
        logger.info("canary %s promoted to champion (was %s): %s", progress.version, before,
                    reason)
    else:
        step = plan.advanced(progress, now) if action == ADVANCE else plan.renewed(progress, now)
        plan.write(client, ctx.model_name, step)
        logger.info("canary %s: %s; share %.0f%%", progress.version, reason, step.share * 100)
    return action, reason, seen


def live_of(ctx: StepContext, progress: plan.Progress) -> LiveAccuracy | LiveErrors | None:
    """Labelled requests of both roles since the canary started: right answers of a classifier,
    absolute errors of a regression (flywheel.monitoring.canary_live). An unreadable log judges
    errors and latency alone rather than stopping the controller (whose lease would lapse and
    stall the canary)."""
    read = live_errors if ctx.spec.task == "regression" else live_accuracy
    try:
        return read(ctx.logs.inference, ctx.logs.feedback, progress.version,
                    datetime.fromtimestamp(progress.plan.started_at, UTC))
    except DataError as exc:
        logger.warning("canary %s: live metric not read: %s", progress.version, exc)
        return None


def rollback(ctx: StepContext, client: Any, progress: plan.Progress, reason: str) -> None:
    """Share 0 and the alias gone first (clients), then the event and the log line (people)."""
    from prefect.events import emit_event

    plan.end(client, ctx.model_name, progress, plan.ROLLED_BACK, reason)
    logger.error("canary %s of %s rolled back: %s", progress.version, ctx.model_name, reason)
    emit_event(event=ROLLED_BACK_EVENT,
               resource={"prefect.resource.id": f"flywheel.model.{ctx.model_name}",
                         "prefect.resource.name": ctx.model_name},
               payload={"version": progress.version, "reason": reason})


@flow(name="flywheel-canary")
def canary(model: str | None = None, max_evaluations: int | None = None) -> dict[str, Any]:
    """Evaluate every canary.eval_seconds until the canary ends (or `max_evaluations`)."""
    ctx = make_context(model=model)
    params = canary_params(ctx)
    action, reason, seen, done = "hold", "", 0, 0
    while max_evaluations is None or done < max_evaluations:
        action, reason, seen = evaluate_once(ctx, params.prometheus_url, seen)
        done += 1
        if action in ("ended", ROLLBACK, PROMOTE):
            break
        time.sleep(params.eval_seconds)
    outcome = {ROLLBACK: plan.ROLLED_BACK, PROMOTE: plan.PROMOTED}.get(action, action)
    return {"model_name": ctx.model_name, "outcome": outcome, "reason": reason,
            "evaluations": done}
