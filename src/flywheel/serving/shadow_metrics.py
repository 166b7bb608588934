"""Prometheus series of the shadow challenger (`flywheel_shadow_*`), next to the service's own.

Counters rather than ratio gauges: in BentoML's multiprocess mode a gauge per worker cannot be
summed into a rate, while `agreeing_records / records` over any window can (the agreement rate;
infra/prometheus holds it as a recording rule). Labels are the challenger's registry version and
fixed reasons, so the series stay few.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from flywheel.serving.metrics import PROBABILITY_BUCKETS

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0)
DISTANCE_BUCKETS = (0.001, 0.005, 0.01, 0.025, *PROBABILITY_BUCKETS)


@dataclass(frozen=True)
class ShadowMetrics:
    requests: Any
    errors: Any
    dropped: Any
    latency: Any
    records: Any
    agreeing: Any
    distance: Any
    reloads: Any
    challenger: Any
    crashes: Any

    def loaded(self, version: str | None, previous: str | None) -> None:
        """The challenger gauge: 1 for the version shadowing now, 0 for the one it replaced."""
        if previous is not None and previous != version:
            self.challenger.labels(model_version=previous).set(0)
        if version is not None:
            self.challenger.labels(model_version=version).set(1)


@functools.cache
def shadow_metrics() -> ShadowMetrics:
    """Created once per worker, when the service starts (never at import)."""
    from prometheus_client import Counter, Gauge, Histogram

    version = ["challenger_version"]
    return ShadowMetrics(
        requests=Counter("flywheel_shadow_requests",
                         "Requests the challenger scored (or tried to), off the response path",
                         version),
        errors=Counter("flywheel_shadow_errors",
                       "Requests the challenger failed to score, by reason (invalid: the "
                       "record does not fit its schema; predict: its model raised; crash: "
                       "lost with its process)",
                       [*version, "reason"]),
        dropped=Counter("flywheel_shadow_dropped_requests",
                        "Sampled requests not shadowed because the challenger's queue was full"),
        latency=Histogram("flywheel_shadow_latency_seconds",
                          "The challenger's time to validate and score the requests "
                          "scored together with this one (one call)", version,
                          buckets=LATENCY_BUCKETS),
        records=Counter("flywheel_shadow_records",
                        "Records both the champion and the challenger answered", version),
        agreeing=Counter("flywheel_shadow_agreeing_records",
                         "Records the challenger predicted the same class (value) for",
                         version),
        distance=Histogram("flywheel_shadow_score_distance",
                           "|champion probability - challenger probability| per record",
                           version, buckets=DISTANCE_BUCKETS),
        reloads=Counter("flywheel_shadow_reloads",
                        "Attempts to load the challenger alias's version, by outcome "
                        "(success, signature_refused, integrity_error, failure, removed)",
                        ["outcome"]),
        challenger=Gauge("flywheel_shadow_challenger_info",
                         "1 for the registry version shadowing the champion now",
                         ["model_version"], multiprocess_mode="livemax"),
        crashes=Counter("flywheel_shadow_process_crashes",
                        "Times the challenger's process died (a native crash, a kill, out of "
                        "memory); another is started after a backoff"),
    )
