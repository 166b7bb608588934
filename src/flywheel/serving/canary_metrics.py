"""Prometheus series of live traffic per role (`flywheel_routed_*`) and the canary's share.

Counted per model call, labelled by the role that answered (champion or canary) and its
registry version, so Prometheus can compare the two over the same window: records attempted,
records whose call raised, and the call time (infra/prometheus/rules/recording.yml turns them
into the canary's error-ratio excess and p95 latency ratio the controller reads). Counters, not
ratio gauges: BentoML's workers write in multiprocess mode, where only counters sum.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

# 1.2x apart from 0.5 ms to 9.4 s: the controller counts canary calls past the first bound at or
# above canary.max_latency_ratio x the champion's p95 (flywheel.monitoring.canary_latency), so a
# coarse ladder (1-2.5-5) would round a 1.5x threshold up past 2x and miss a 2x slower canary.
CALL_BUCKETS = tuple(float(f"{0.0005 * 1.2**i:.3g}") for i in range(55))


@dataclass(frozen=True)
class RoutedMetrics:
    records: Any
    errors: Any
    seconds: Any
    share: Any
    reloads: Any
    rolled_back: Any


@functools.cache
def routed_metrics() -> RoutedMetrics:
    """Created once per worker, when the service starts (never at import)."""
    from prometheus_client import Counter, Gauge, Histogram

    labels = ["role", "model_version"]
    return RoutedMetrics(
        records=Counter("flywheel_routed_records",
                        "Records sent to a model call, by the role answering and its version",
                        labels),
        errors=Counter("flywheel_routed_errors",
                       "Records of model calls that raised, by role and version (a canary's "
                       "are answered again by the champion)", labels),
        seconds=Histogram("flywheel_routed_call_seconds",
                          "Time of one model call, by role and version", labels,
                          buckets=CALL_BUCKETS),
        share=Gauge("flywheel_canary_share",
                    "Share of requests this service routes to the canary version now (0: "
                    "none, or its lease lapsed)", ["model_version"],
                    multiprocess_mode="livemax"),
        reloads=Counter("flywheel_canary_reloads",
                        "Attempts to load the canary version, by outcome", ["outcome"]),
        rolled_back=Gauge("flywheel_canary_rolled_back_timestamp_seconds",
                          "When the registry recorded this canary version's rollback",
                          ["model_version"], multiprocess_mode="livemax"),
    )
