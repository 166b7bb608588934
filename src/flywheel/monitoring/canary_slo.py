"""The canary against the champion over the same window, and what the controller does about it.

Errors and records are counted over the current step (`increase()` of the services' counters
since the step started, read over Prometheus's HTTP API) and judged by
flywheel.monitoring.canary_errors, which stays sound on a handful of records; the p95 latency
ratio is the recording rule infra/prometheus/rules/recording.yml ships (`flywheel:canary_*`),
which the dashboard shows too; the live accuracy, where labels arrived, comes from the inference
log (flywheel.monitoring.canary_live). A series Prometheus does not have yet is None: no
evidence, which holds the step but never promotes it. A step passes only with
`canary.min_records` canary records seen over it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flywheel.errors import FlywheelError
from flywheel.monitoring.canary_errors import error_breach
from flywheel.monitoring.canary_live import LiveAccuracy, metric_breach
from flywheel.registry.canary import Plan, Progress

# Counted over the step: `{window}` is the seconds since it started.
CANARY_COUNT = ('sum(increase(flywheel_routed_{kind}_total'
                '{{role="canary",model_version="{version}"}}[{window}s]))')
CHAMPION_COUNT = 'sum(increase(flywheel_routed_{kind}_total{{role="champion"}}[{window}s]))'
LATENCY_RATIO = "max(flywheel:canary_latency_ratio:rate1m)"
QUERY_TIMEOUT_S = 10


class PrometheusUnreachable(FlywheelError):
    """Prometheus did not answer a query: no judgement is possible this evaluation."""


@dataclass(frozen=True)
class Evaluation:
    """One reading: counts over the step (records, errors; rounded: `increase()`
    extrapolates), the p95 latency ratio (None: Prometheus has no value yet) and the live
    accuracy counts (None: no labels)."""

    canary_records: int
    canary_errors: int
    champion_records: int
    champion_errors: int
    latency_ratio: float | None
    live: LiveAccuracy | None = None

    @property
    def has_traffic(self) -> bool:
        return self.canary_records > 0

    @property
    def champion_error_ratio(self) -> float:
        return self.champion_errors / self.champion_records if self.champion_records else 0.0


def breach(evaluation: Evaluation, plan: Plan) -> str | None:
    """Why the canary must roll back now, in one line; None while it keeps its bounds."""
    errors = error_breach(evaluation.canary_errors, evaluation.canary_records,
                          evaluation.champion_error_ratio, plan.max_error_excess,
                          plan.min_records)
    if errors is not None:
        return errors
    ratio = evaluation.latency_ratio
    if ratio is not None and ratio > plan.max_latency_ratio:
        return (f"p95 model-call time {ratio:.2f}x the champion's, over the bound "
                f"{plan.max_latency_ratio:g}x (canary.max_latency_ratio)")
    return metric_breach(evaluation.live, plan.max_metric_drop, plan.min_labelled_rows)


ROLLBACK, ADVANCE, PROMOTE, HOLD = "rollback", "advance", "promote", "hold"


def next_action(progress: Progress, evaluation: Evaluation, now: float) -> tuple[str, str]:
    """What the controller does after one evaluation, and why.

    A breach rolls back at once, whatever the step. A step passes once it has lasted
    `step_seconds`, the canary answered `min_records` records over it and the latency ratio has
    a value; passing the step before the last share (1.0) promotes, since at 100% there is no
    champion traffic left to compare with.
    """
    reason = breach(evaluation, progress.plan)
    if reason is not None:
        return ROLLBACK, reason
    share = f"{progress.share:.0%}"
    if now - progress.step_started < progress.plan.step_seconds:
        return HOLD, f"step {progress.step + 1} ({share}) within its bounds"
    if evaluation.canary_records < progress.plan.min_records:
        return HOLD, (f"step {progress.step + 1} ({share}) has {evaluation.canary_records} of "
                      f"{progress.plan.min_records} canary records (canary.min_records)")
    if evaluation.latency_ratio is None:
        return HOLD, f"step {progress.step + 1} ({share}) has no latency ratio yet"
    if progress.step + 1 >= len(progress.plan.steps) - 1:
        return PROMOTE, f"passed every step up to {share} within its bounds"
    return ADVANCE, f"step {progress.step + 1} ({share}) passed within its bounds"


def evaluate(prometheus_url: str, progress: Progress, now: float,
             live: LiveAccuracy | None = None) -> Evaluation:
    """Read the counts over the current step and the latency ratio now;
    `PrometheusUnreachable` when Prometheus does not answer."""
    window = max(1, math.ceil(now - progress.step_started))
    counts = [round(instant(prometheus_url, query.format(
        kind=kind, version=progress.version, window=window)) or 0.0)
        for query in (CANARY_COUNT, CHAMPION_COUNT) for kind in ("records", "errors")]
    return Evaluation(counts[0], min(counts[1], counts[0]), counts[2], min(counts[3], counts[2]),
                      instant(prometheus_url, LATENCY_RATIO), live)


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
