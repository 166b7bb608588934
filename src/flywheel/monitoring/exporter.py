"""Prometheus exporter for the monitor report: gauges read from `latest.json` at scrape time.

One exporter serves every model of the project: each scrape reads each model's own folder
(`logs/monitor/<model>/`, `flywheel.model_logs`) and every series carries `model_name`, so two
models' gauges never overwrite each other (and alerts say which model drifted).
Nothing is pushed or cached: each scrape reads the report the monitoring flow last wrote, so
its series are always that report's, and once the report is older than `monitor.report_ttl_s`
only `flywheel_monitor_report_timestamp_seconds` remains (drift series expire instead of
lingering, which a Pushgateway cannot do; alert on the timestamp for a stalled monitor).
The last triggered retrain's data outcome (`retrain.json`, same folder) is served alongside
(`flywheel.monitoring.retrain_status`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flywheel.monitoring.gauges import Folders, GaugeSet, each_model
from flywheel.monitoring.report import read_report
from flywheel.monitoring.retrain_status import RetrainStatusCollector

log = logging.getLogger(__name__)

FEATURE_GAUGES = {
    "psi": ("flywheel_feature_drift_psi", "PSI of the feature in the window vs the reference"),
    "js": ("flywheel_feature_drift_js", "Jensen-Shannon distance (base 2) vs the reference"),
    "threshold": ("flywheel_feature_drift_threshold", "PSI alarm level for this window size"),
    "p_value": ("flywheel_feature_drift_p_value", "Resampling p-value of the feature's PSI"),
    "drifted": ("flywheel_feature_drifted", "1 when Holm's rule flagged the feature"),
}
SCORE_GAUGES = {
    "psi": ("flywheel_score_drift_psi", "PSI of the predicted score vs the reference"),
    "threshold": ("flywheel_score_drift_threshold", "PSI alarm level of the score"),
    "p_value": ("flywheel_score_drift_p_value", "Resampling p-value of the score's PSI"),
    "drifted": ("flywheel_score_drifted", "1 when Holm's rule flagged the score"),
}
LIVE_GAUGES = {
    "roc_auc": ("flywheel_live_roc_auc", "ROC-AUC on labelled predictions in the live window"),
    "pr_auc": ("flywheel_live_pr_auc", "PR-AUC (average precision) on labelled predictions"),
    "brier": ("flywheel_live_brier", "Brier score on labelled predictions"),
    "positive_rate": ("flywheel_live_positive_rate", "Share of positive labels"),
    "labelled_rows": ("flywheel_live_labelled_rows", "Labelled predictions in the live window"),
}


class ReportCollector:
    """A prometheus_client collector over every model's monitor folder (`folders()`)."""

    def __init__(self, folders: Folders, ttl_s: float) -> None:
        self.folders = folders
        self.ttl_s = ttl_s

    def collect(self) -> Iterator[Any]:
        yield from each_model(self.folders, read_report, self._add, "monitor report")

    def _add(self, gauges: GaugeSet, name: str, report: dict[str, Any]) -> None:
        stamp = datetime.fromisoformat(report["generated_at"]).timestamp()
        gauges.set(
            "flywheel_monitor_report_timestamp_seconds",
            "When the latest monitor report was computed",
            {"model_name": name},
            stamp,
        )
        if time.time() - stamp <= self.ttl_s:
            add_report(gauges, name, report)


def add_report(gauges: GaugeSet, name: str, report: dict[str, Any]) -> None:
    """The gauges of one model's report; a score that could not be computed is left out."""
    model = {"model_name": name, "model_version": str(report["model_version"])}
    for key, (metric, doc) in FEATURE_GAUGES.items():
        for feature, scores in report["features"].items():
            gauges.set(metric, doc, {"feature": feature, **model}, scores.get(key))
    for key, (metric, doc) in SCORE_GAUGES.items():
        gauges.set(metric, doc, model, report["score"].get(key))
    gauges.set("flywheel_drift_window_rows", "Rows in the drift window", model,
               report["window"]["rows"])
    gauges.set(
        "flywheel_drift_detected",
        "1 when the report's verdict is drift (Holm's rule, for monitor.persistence windows)",
        model,
        report["drifted"],
    )
    gauges.set("flywheel_drift_enough_traffic",
               "1 when the window had at least monitor.min_rows rows", model,
               report["enough_traffic"])
    live = report["live"]
    for key, (metric, doc) in LIVE_GAUGES.items():
        gauges.set(metric, doc, model, live.get(key))
    _add_live_by_metric(gauges, model, live)


def _add_live_by_metric(gauges: GaugeSet, model: dict[str, str], live: dict[str, Any]) -> None:
    """The task's live metrics, their floors and directions, labelled by metric name: one
    alert rule and one panel serve every task (binary ROC-AUC, multiclass macro-F1, RMSE)."""
    from flywheel.data.task import lower_is_better

    for metric in live.get("metrics", ["roc_auc", "pr_auc", "brier"]):  # reports before tasks
        labels = {"metric": metric, **model}
        gauges.set("flywheel_live_metric", "Live metric on labelled predictions, by metric",
                   labels, live.get(metric))
        gauges.set("flywheel_live_metric_lower_is_better",
                   "1 when a smaller value of the metric is better (its floor is a ceiling), "
                   "else 0", labels, float(lower_is_better(metric)))
    for metric, value in live["floors"].items():
        gauges.set("flywheel_live_metric_floor",
                   "Floor (ceiling for lower-is-better metrics) promotion used, by metric",
                   {"metric": metric, **model}, value)


def serve_exporter(folders: Folders, ttl_s: float, host: str, port: int) -> None:
    """Serve `/metrics` on host:port until interrupted."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(folders, ttl_s))  # type: ignore[arg-type]
    registry.register(RetrainStatusCollector(folders))  # type: ignore[arg-type]
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("monitor exporter on http://%s:%d/metrics", host, port)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
