"""The service's own Prometheus metrics, next to BentoML's request metrics on `/metrics`.

prometheus_client is used directly (bentoml.metrics is deprecated); `bentoml serve` runs it in
multiprocess mode, so every worker writes to the shared directory BentoML scrapes. Info metrics
do not work in that mode: the serving version is a gauge set to 1 instead. Label values come
from bounded sets (class labels, feature names, registry versions, fixed reasons).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flywheel.data.answers import class_probabilities
from flywheel.data.task import Task

logger = logging.getLogger(__name__)

PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20)) + (1.0,)
# Predicted values of any scale and sign: one bucket per decade either side of zero (buckets
# are fixed when the metric is made, before the model and its scale are known).
VALUE_BUCKETS = tuple(sorted({s * 10.0 ** e for s in (-1, 1) for e in range(-2, 7)} | {0.0}))
NO_CLASS = "none"  # predicted_class of a regression's answers


@dataclass(frozen=True)
class ServingMetrics:
    predictions: Any
    probability: Any
    class_probability: Any
    predicted_value: Any
    invalid_requests: Any
    unseen_categories: Any
    reloads: Any
    model_info: Any
    log_rows: Any
    log_dropped: Any
    log_errors: Any
    batch_requests: Any
    feedback: Any = None
    promoted: Any = None
    gc_pause: Any = None

    def observe_predictions(self, version: str, task: Task, output: pd.DataFrame) -> None:
        """Count a batch in one call per class and per bucket, not one call per row.

        Classification: records per predicted class, and each class's probability (binary:
        the positive class's, in `flywheel_positive_probability` as before); regression:
        records under `predicted_class="none"` and the predicted values.
        """
        if not task.is_classification:
            self.predictions.labels(predicted_class=NO_CLASS, model_version=version).inc(
                len(output))
            observe_many(self.predicted_value.labels(model_version=version),
                         output["prediction"].to_numpy(dtype="float64"))
            return
        values, counts = np.unique(output["prediction"].astype(str).to_numpy(dtype=object),
                                   return_counts=True)
        for label, count in zip(values, counts, strict=True):
            self.predictions.labels(predicted_class=str(label), model_version=version).inc(
                int(count))
        if task.kind == "binary":
            observe_many(self.probability.labels(model_version=version),
                         output["probability"].to_numpy(dtype="float64"))
            return
        matrix = class_probabilities(task, output)
        if matrix is None:  # a model that answers no probabilities
            return
        for i, label in enumerate(task.classes):
            observe_many(self.class_probability.labels(**{"class": label},
                                                       model_version=version), matrix[:, i])

    def serving(self, name: str, version: str, previous: str | None,
                promoted_at: float | None = None) -> None:
        if previous is not None and previous != version:
            self.model_info.labels(model_name=name, model_version=previous).set(0)
            if self.promoted is not None:  # 0 = no longer serving (multiprocess: no removal)
                self.promoted.labels(model_name=name, model_version=previous).set(0)
        self.model_info.labels(model_name=name, model_version=version).set(1)
        if promoted_at is not None and self.promoted is not None:
            self.promoted.labels(model_name=name, model_version=version).set(promoted_at)


def observe_many(child: Any, values: np.ndarray) -> None:
    """Bulk histogram observation: same result as `observe` per value, one lock per bucket.

    Relies on prometheus_client's layout (per-bucket, non-cumulative `_buckets` and `_sum`);
    falls back to plain `observe` if that layout ever changes.
    """
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        return
    buckets = getattr(child, "_buckets", None)
    bounds = getattr(child, "_upper_bounds", None)
    total = getattr(child, "_sum", None)
    if buckets is None or bounds is None or total is None or len(buckets) != len(bounds):
        for value in values:
            child.observe(float(value))
        return
    index = np.searchsorted(np.asarray(bounds, dtype="float64"), values, side="left")
    for i, count in zip(*np.unique(index, return_counts=True), strict=True):
        buckets[int(i)].inc(int(count))
    total.inc(float(values.sum()))


@functools.cache
def serving_metrics() -> ServingMetrics:
    """Create the metrics once per process, when the service starts (never at import)."""
    from prometheus_client import Counter, Gauge, Histogram

    return ServingMetrics(
        predictions=Counter(
            "flywheel_predictions", "Records answered, by predicted class and model version",
            ["predicted_class", "model_version"]),
        probability=Histogram(
            "flywheel_positive_probability", "Predicted probability of the positive class",
            ["model_version"], buckets=PROBABILITY_BUCKETS),
        class_probability=Histogram(
            "flywheel_class_probability", "Predicted probability of each class (multiclass)",
            ["class", "model_version"], buckets=PROBABILITY_BUCKETS),
        predicted_value=Histogram(
            "flywheel_predicted_value", "Predicted values (regression)",
            ["model_version"], buckets=VALUE_BUCKETS),
        invalid_requests=Counter(
            "flywheel_invalid_requests", "Refused requests (bad body, foreign Host, wrong "
            "token, not JSON), by reason", ["reason"]),
        unseen_categories=Counter(
            "flywheel_unseen_categories",
            "Values of categorical features not in the dataset spec (accepted, then ignored "
            "by the transformer), by feature", ["feature"]),
        reloads=Counter(
            "flywheel_model_reloads", "Attempts to load a new champion, by outcome", ["outcome"]),
        model_info=Gauge(
            "flywheel_model_info", "1 for the registry version this service answers with",
            ["model_name", "model_version"], multiprocess_mode="livemax"),
        log_rows=Counter(
            "flywheel_inference_log_rows", "Rows written to the inference log"),
        log_dropped=Counter(
            "flywheel_inference_log_dropped_requests",
            "Sampled requests not logged, by reason (queue_full, write_error)", ["reason"]),
        log_errors=Counter(
            "flywheel_inference_log_write_errors", "Failed writes of inference log files"),
        batch_requests=Histogram(
            "flywheel_batch_requests", "/predict requests answered by one model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)),
        feedback=Counter(
            "flywheel_feedback", "Labels sent to /feedback, by outcome (accepted, bad_label, "
            "unknown_request_id, bad_request, too_large, too_slow, write_error)", ["outcome"]),
        promoted=Gauge(
            "flywheel_model_promoted_timestamp_seconds",
            "When the serving version was registered as champion (0: no longer serving)",
            ["model_name", "model_version"], multiprocess_mode="livemax"),
        gc_pause=Histogram(
            "flywheel_gc_pause_seconds", "Garbage-collector pauses of a worker, by generation "
            "(every request in flight waits them out)", ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)),
    )
