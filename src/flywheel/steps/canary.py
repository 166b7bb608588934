"""`flywheel canary start|stop`: a version on live traffic, through the promotion gate first.

A canary answers real clients, so it meets the same offline gate `flywheel promote --version`
does (promote_version.judge_version: scored against the champion on rows neither trained on),
unless `--force --reason`; the verdict is recorded on the version (`flywheel.canary_gate.*`)
and signed, which is what lets a service load it. The plan (params' canary section) goes to
the registry at its first step with no lease: no traffic moves until the controller
(pipelines/canary.py) renews it. The final promotion goes through `move_champion`, the code
`promote --version` moves the alias with.
"""

from __future__ import annotations

import time
from typing import Any

from flywheel.config import CanaryParams
from flywheel.errors import ConfigError, RegistryError
from flywheel.registry import canary, store
from flywheel.steps.context import StepContext
from flywheel.steps.promote_version import judge_version, move_champion

GATE_TAG = f"{store.TAG_PREFIX}canary_gate"


def canary_params(ctx: StepContext) -> CanaryParams:
    """params.yaml's canary section, which older params files lack."""
    if ctx.params.canary is None:
        raise ConfigError(f"{ctx.settings.params_path}: no `canary:` section (steps, "
                          "step_seconds, ...); copy it from the shipped params.yaml")
    return ctx.params.canary


def start_canary(ctx: StepContext, version: str, force_reason: str | None) -> dict[str, Any]:
    """Judge `version`, then record its plan and alias it `canary`."""
    params = canary_params(ctx)
    if ctx.spec.is_image:
        raise ConfigError(f"{ctx.model_name!r} is an image model: canaries route `/predict` "
                          "records only, `/predict_image` uploads always meet the champion; "
                          "promote it with `flywheel promote --version N` instead")
    if params.route_by != "request_id" and params.route_by not in ctx.spec.feature_names:
        raise ConfigError(f"canary.route_by: {params.route_by!r} is not a request field of "
                          f"{ctx.spec_path.name}; expected request_id or one of its features")
    client = store.connect(ctx.settings)
    running = canary.read_progress(client, ctx.model_name)
    if running is not None and running.state == canary.RUNNING:
        raise RegistryError(f"version {running.version} of {ctx.model_name!r} is on canary "
                            "already; `flywheel canary stop` first")
    verdict, champion = judge_version(ctx, client, version, force_reason, GATE_TAG)
    if not verdict.promote:
        raise RegistryError(f"version {version} of {ctx.model_name!r} not put on canary: "
                            f"{verdict.reason}; pass --force --reason TEXT to try it anyway")
    if champion is None:
        raise RegistryError(f"{ctx.model_name!r} has no champion to compare a canary with; "
                            "promote one first (`flywheel promote --version N`)")
    plan = canary.Plan(params.steps, params.step_seconds, params.eval_seconds,
                       params.lease_seconds, params.max_error_excess, params.max_latency_ratio,
                       time.time(), force_reason, params.min_records,
                       params.max_metric_drop, ctx.params.monitor.min_labelled_rows,
                       params.require_labels, params.max_mae_increase)
    canary.begin(client, ctx.model_name, version, plan)
    return {"model_name": ctx.model_name, "version": version, "champion": champion,
            "steps": params.steps, "reason": verdict.reason}


def stop_canary(ctx: StepContext) -> dict[str, Any]:
    """Share 0 and the alias removed, recorded as stopped by hand; the champion is untouched."""
    client = store.connect(ctx.settings)
    progress = canary.read_progress(client, ctx.model_name)
    if progress is None or progress.state != canary.RUNNING:
        return {"model_name": ctx.model_name, "stopped": None}
    canary.end(client, ctx.model_name, progress, canary.STOPPED, "stopped by hand")
    return {"model_name": ctx.model_name, "stopped": progress.version}


def promote_canary(ctx: StepContext, progress: canary.Progress, reason: str) -> str | None:
    """The canary becomes champion (the old one `previous`); the champion it replaced."""
    client = store.connect(ctx.settings)
    champion = store.version_by_alias(client, ctx.model_name, store.CHAMPION)
    before = str(champion.version) if champion else None
    move_champion(client, ctx.model_name, progress.version, before, f"canary: {reason}")
    canary.end(client, ctx.model_name, progress, canary.PROMOTED, reason)
    return before
