"""The canary against the champion over the same window, as Prometheus's rules record it.

The comparison itself lives in infra/prometheus/rules/recording.yml (`flywheel:canary_*`), so
the controller, the alerts and the dashboard judge the same numbers; this module reads them over
Prometheus's HTTP API and says whether a bound of the plan is breached. A series Prometheus does
not have yet (no canary traffic in the window, a ratio of nothing) is None: no evidence, which
holds the step but never promotes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flywheel.errors import FlywheelError
from flywheel.registry.canary import Plan, Progress

TRAFFIC = 'sum(flywheel:routed_records:rate1m{role="canary"})'
ERROR_EXCESS = "max(flywheel:canary_error_excess:rate1m)"
LATENCY_RATIO = "max(flywheel:canary_latency_ratio:rate1m)"
QUERY_TIMEOUT_S = 10


class PrometheusUnreachable(FlywheelError):
    """Prometheus did not answer a query: no judgement is possible this evaluation."""


@dataclass(frozen=True)
class Evaluation:
    """One reading of the canary's series (None: Prometheus has no value yet)."""

    canary_records_per_s: float | None
    error_excess: float | None
    latency_ratio: float | None

    @property
    def has_traffic(self) -> bool:
        return bool(self.canary_records_per_s)

    @property
    def complete(self) -> bool:
        """Every comparison has a value: enough to pass a step on."""
        return self.has_traffic and None not in (self.error_excess, self.latency_ratio)


def breach(evaluation: Evaluation, plan: Plan) -> str | None:
    """Why the canary must roll back now, in one line; None while it keeps its bounds."""
    excess, ratio = evaluation.error_excess, evaluation.latency_ratio
    if excess is not None and excess > plan.max_error_excess:
        return (f"error ratio {excess:.4f} above the champion's, over the bound "
                f"{plan.max_error_excess:g} (canary.max_error_excess)")
    if ratio is not None and ratio > plan.max_latency_ratio:
        return (f"p95 model-call time {ratio:.2f}x the champion's, over the bound "
                f"{plan.max_latency_ratio:g}x (canary.max_latency_ratio)")
    return None


ROLLBACK, ADVANCE, PROMOTE, HOLD = "rollback", "advance", "promote", "hold"


def next_action(progress: Progress, evaluation: Evaluation, now: float) -> tuple[str, str]:
    """What the controller does after one evaluation, and why.

    A breach rolls back at once, whatever the step. A step passes once it has lasted
    `step_seconds` and this evaluation has every comparison; passing the step before the last
    share (1.0) promotes, since at 100% there is no champion traffic left to compare with.
    """
    reason = breach(evaluation, progress.plan)
    if reason is not None:
        return ROLLBACK, reason
    share = f"{progress.share:.0%}"
    if now - progress.step_started < progress.plan.step_seconds:
        return HOLD, f"step {progress.step + 1} ({share}) within its bounds"
    if not evaluation.complete:
        return HOLD, f"step {progress.step + 1} ({share}) has no canary figures yet"
    if progress.step + 1 >= len(progress.plan.steps) - 1:
        return PROMOTE, f"passed every step up to {share} within its bounds"
    return ADVANCE, f"step {progress.step + 1} ({share}) passed within its bounds"


def evaluate(prometheus_url: str) -> Evaluation:
    """Read the three series now; `PrometheusUnreachable` when Prometheus does not answer."""
    return Evaluation(*(instant(prometheus_url, q) for q in (TRAFFIC, ERROR_EXCESS,
                                                             LATENCY_RATIO)))


def instant(prometheus_url: str, query: str) -> float | None:
    """One instant query's single value; None for no series or NaN."""
    import httpx

    try:
        answer = httpx.get(f"{prometheus_url.rstrip('/')}/api/v1/query", params={"query": query},
                           timeout=QUERY_TIMEOUT_S)
        answer.raise_for_status()
        result = answer.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise PrometheusUnreachable(f"canary.prometheus_url {prometheus_url}: query {query!r} "
                                    f"failed ({type(exc).__name__}: {exc})") from exc
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value
