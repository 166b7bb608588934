"""The canary against the champion over the same window, and what the controller does about it.

Errors and records are counted over the current step (`increase()` of the services' counters
since the step started, read over Prometheus's HTTP API) and judged by
flywheel.monitoring.canary_errors, which stays sound on a handful of records; call times too
(the canary's `flywheel_routed_call_seconds` buckets and both roles' p95 over the step), judged
by flywheel.monitoring.canary_latency the same way; the live accuracy, where labels arrived,
comes from the inference log (flywheel.monitoring.canary_live). A series Prometheus does not
have yet is None: no evidence, which holds the step but never promotes it. A step passes only
with `canary.min_records` canary records and timed calls seen over it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flywheel.errors import FlywheelError
from flywheel.monitoring.canary_errors import error_breach, error_excess
from flywheel.monitoring.canary_latency import Buckets, latency_breach, p95_breach
from flywheel.monitoring.canary_live import (
    LiveAccuracy,
    LiveErrors,
    labelled_enough,
    metric_breach,
    metric_excess,
)
from flywheel.monitoring.canary_mae import mae_breach, mae_excess
from flywheel.registry.canary import Plan, Progress

# Counted over the step: `{window}` is the seconds since it started.
CANARY_COUNT = ('sum(increase(flywheel_routed_{kind}_total'
                '{{role="canary",model_version="{version}"}}[{window}s]))')
CHAMPION_COUNT = 'sum(increase(flywheel_routed_{kind}_total{{role="champion"}}[{window}s]))'
CALL_BUCKETS = ('sum by (le) (increase(flywheel_routed_call_seconds_bucket'
                '{{role="canary",model_version="{version}"}}[{window}s]))')
CALL_P95 = ('histogram_quantile(0.95, sum by (le) (increase(flywheel_routed_call_seconds_bucket'
            '{{{selector}}}[{window}s])))')
CANARY_SELECTOR = 'role="canary",model_version="{version}"'
CHAMPION_SELECTOR = 'role="champion"'
QUERY_TIMEOUT_S = 10


class PrometheusUnreachable(FlywheelError):
    """Prometheus did not answer a query: no judgement is possible this evaluation."""


@dataclass(frozen=True)
class Evaluation:
    """One reading over the step: counts (records, errors; rounded: `increase()`
    extrapolates), the canary's p95 model-call time over the champion's (None: either has no
    timed call yet), the champion's p95 in seconds, the canary's cumulative call-time buckets
    (le, calls) and the live accuracy counts (None: no labels)."""

    canary_records: int
    canary_errors: int
    champion_records: int
    champion_errors: int
    latency_ratio: float | None
    live: LiveAccuracy | LiveErrors | None = None
    champion_p95: float | None = None
    canary_buckets: Buckets = ()

    @property
    def canary_calls(self) -> int:
        """Timed canary calls over the step (a failed call is not timed)."""
        return max((calls for _, calls in self.canary_buckets), default=0)

    @property
    def has_traffic(self) -> bool:
        """Canary records or timed calls seen: either is evidence an evaluation judged (the two
        counters' first increase can reach Prometheus at different scrapes)."""
        return self.canary_records > 0 or self.canary_calls > 0


def breach(evaluation: Evaluation, plan: Plan) -> str | None:
    """Why the canary must roll back now, in one line; None while it keeps its bounds."""
    errors = error_breach(evaluation.canary_errors, evaluation.canary_records,
                          evaluation.champion_errors, evaluation.champion_records,
                          plan.max_error_excess)
    if errors is not None:
        return errors
    slow = latency_breach(evaluation.canary_buckets, evaluation.champion_p95,
                          plan.max_latency_ratio)
    if slow is not None:
        return slow
    if isinstance(evaluation.live, LiveErrors):
        return mae_breach(evaluation.live, plan.max_mae_increase, plan.min_labelled_rows)
    return metric_breach(evaluation.live, plan.max_metric_drop, plan.min_labelled_rows)


ROLLBACK, ADVANCE, PROMOTE, HOLD = "rollback", "advance", "promote", "hold"


def next_action(progress: Progress, evaluation: Evaluation, now: float) -> tuple[str, str]:
    """What the controller does after one evaluation, and why.

    A breach rolls back at once, whatever the step. A step passes once it has lasted
    `step_seconds`, the canary answered `min_records` records and timed as many calls over it,
    its observed error excess and live metric keep their bounds (over one, not
    significantly: the step holds) and its p95 ratio over the step keeps `max_latency_ratio`
    (over it: rolled back); passing the step before the last share (1.0) promotes, since at
    100% there is no champion traffic left to compare with.
    """
    reason = breach(evaluation, progress.plan)
    if reason is not None:
        return ROLLBACK, reason
    share = f"{progress.share:.0%}"
    if now - progress.step_started < progress.plan.step_seconds:
        return HOLD, f"step {progress.step + 1} ({share}) within its bounds"
    seen = min(evaluation.canary_records, evaluation.canary_calls)
    if seen < progress.plan.min_records:
        return HOLD, (f"step {progress.step + 1} ({share}) has {seen} of "
                      f"{progress.plan.min_records} canary records and timed calls "
                      "(canary.min_records)")
    over = error_excess(evaluation.canary_errors, evaluation.canary_records,
                        evaluation.champion_errors, evaluation.champion_records,
                        progress.plan.max_error_excess)
    over = over or _live_excess(evaluation.live, progress.plan)
    if over is not None:
        return HOLD, f"step {progress.step + 1} ({share}) holds: {over}"
    if evaluation.latency_ratio is None:
        return HOLD, f"step {progress.step + 1} ({share}) has no latency ratio yet"
    slow = p95_breach(evaluation.latency_ratio, evaluation.canary_calls,
                      progress.plan.max_latency_ratio)
    if slow is not None:
        return ROLLBACK, slow
    if progress.step + 1 >= len(progress.plan.steps) - 1:
        unlabelled = _too_few_labels(evaluation.live, progress.plan)
        if unlabelled is not None:
            return HOLD, f"step {progress.step + 1} ({share}) waits for labels: {unlabelled}"
        return PROMOTE, f"passed every step up to {share} within its bounds"
    return ADVANCE, f"step {progress.step + 1} ({share}) passed within its bounds"


def _live_excess(live: LiveAccuracy | LiveErrors | None, plan: Plan) -> str | None:
    """The live metric's hold reason: accuracy for a classifier, MAE for a regression."""
    if isinstance(live, LiveErrors):
        return mae_excess(live, plan.max_mae_increase, plan.min_labelled_rows)
    return metric_excess(live, plan.max_metric_drop, plan.min_labelled_rows)


def _too_few_labels(live: LiveAccuracy | LiveErrors | None, plan: Plan) -> str | None:
    """With `canary.require_labels`, why promotion waits: too few labelled requests on a side
    for the live accuracy to be judged (monitor.min_labelled_rows); None otherwise."""
    if not plan.require_labels or (live is not None
                                    and labelled_enough(live, plan.min_labelled_rows)):
        return None
    rows = (live.canary_rows, live.champion_rows) if live is not None else (0, 0)
    return (f"{rows[0]} canary and {rows[1]} champion labelled requests of "
            f"{plan.min_labelled_rows} each (canary.require_labels)")


def evaluate(prometheus_url: str, progress: Progress, now: float,
             live: LiveAccuracy | LiveErrors | None = None) -> Evaluation:
    """Read the counts and call times over the current step;
    `PrometheusUnreachable` when Prometheus does not answer."""
    window = max(1, math.ceil(now - progress.step_started))
    counts = [round(instant(prometheus_url, query.format(
        kind=kind, version=progress.version, window=window)) or 0.0)
        for query in (CANARY_COUNT, CHAMPION_COUNT) for kind in ("records", "errors")]
    canary_p95, champion_p95 = (instant(prometheus_url, CALL_P95.format(
        selector=selector.format(version=progress.version), window=window))
        for selector in (CANARY_SELECTOR, CHAMPION_SELECTOR))
    buckets = by_label(prometheus_url, CALL_BUCKETS.format(version=progress.version,
                                                           window=window), "le")
    ratio = canary_p95 / champion_p95 if canary_p95 is not None and champion_p95 else None
    return Evaluation(counts[0], min(counts[1], counts[0]), counts[2], min(counts[3], counts[2]),
                      ratio, live, champion_p95,
                      tuple(sorted((float(le), round(n)) for le, n in buckets.items())))


def instant(prometheus_url: str, query: str) -> float | None:
    """One instant query's single value; None for no series or NaN."""
    result = _query(prometheus_url, query)
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def by_label(prometheus_url: str, query: str, label: str) -> dict[str, float]:
    """One instant query's values keyed by `label` (series without it, or NaN, left out)."""
    values = {row["metric"].get(label): float(row["value"][1])
              for row in _query(prometheus_url, query)}
    return {key: value for key, value in values.items()
            if key is not None and not math.isnan(value)}


def _query(prometheus_url: str, query: str) -> list[dict[str, Any]]:
    """The result vector of an instant query; `PrometheusUnreachable` on any failure."""
    import httpx

    try:
        answer = httpx.get(f"{prometheus_url.rstrip('/')}/api/v1/query", params={"query": query},
                           timeout=QUERY_TIMEOUT_S)
        answer.raise_for_status()
        result = answer.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise PrometheusUnreachable(f"canary.prometheus_url {prometheus_url}: query {query!r} "
                                    f"failed ({type(exc).__name__}: {exc})") from exc
    return list(result)
