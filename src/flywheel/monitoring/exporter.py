"""Prometheus exporter for the monitor report: gauges read from `latest.json` at scrape time.

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
from pathlib import Path
from typing import Any

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
    """A prometheus_client collector over the report folder."""

    def __init__(self, folder: Path, ttl_s: float) -> None:
        self.folder = folder
        self.ttl_s = ttl_s

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            report = read_report(self.folder)
        except (OSError, ValueError) as exc:
            log.warning("monitor report in %s unreadable: %s", self.folder, exc)
            return
        if report is None:
            return
        stamp = datetime.fromisoformat(report["generated_at"]).timestamp()
        yield GaugeMetricFamily(
            "flywheel_monitor_report_timestamp_seconds",
            "When the latest monitor report was computed",
            value=stamp,
        )
        if time.time() - stamp > self.ttl_s:
            return
        yield from report_families(report, GaugeMetricFamily)


def report_families(report: dict[str, Any], family: Any) -> Iterator[Any]:
    """Gauge families of one report; a score that could not be computed is left out."""
    version = str(report["model_version"])
    for key, (name, doc) in FEATURE_GAUGES.items():
        gauge = family(name, doc, labels=["feature", "model_version"])
        for feature, scores in report["features"].items():
            if scores.get(key) is not None:
                gauge.add_metric([feature, version], float(scores[key]))
        yield gauge
    for key, (name, doc) in SCORE_GAUGES.items():
        yield _single(family, name, doc, version, report["score"].get(key))
    yield _single(
        family,
        "flywheel_drift_window_rows",
        "Rows in the drift window",
        version,
        report["window"]["rows"],
    )
    yield _single(
        family,
        "flywheel_drift_detected",
        "1 when the report's verdict is drift (Holm's rule, for monitor.persistence windows)",
        version,
        report["drifted"],
    )
    yield _single(
        family,
        "flywheel_drift_enough_traffic",
        "1 when the window had at least monitor.min_rows rows",
        version,
        report["enough_traffic"],
    )
    live = report["live"]
    for key, (name, doc) in LIVE_GAUGES.items():
        yield _single(family, name, doc, version, live.get(key))
    yield from _live_by_metric(family, live, version)


def _live_by_metric(family: Any, live: dict[str, Any], version: str) -> Iterator[Any]:
    """The task's live metrics, their floors and directions, labelled by metric name: one
    alert rule and one panel serve every task (binary ROC-AUC, multiclass macro-F1, RMSE)."""
    from flywheel.data.task import lower_is_better

    names = live.get("metrics", ["roc_auc", "pr_auc", "brier"])  # reports before tasks
    gauges = {
        "value": family("flywheel_live_metric", "Live metric on labelled predictions, by metric",
                        labels=["metric", "model_version"]),
        "floor": family("flywheel_live_metric_floor",
                        "Floor (ceiling for lower-is-better metrics) promotion used, by metric",
                        labels=["metric", "model_version"]),
        "lower": family("flywheel_live_metric_lower_is_better",
                        "1 when a smaller value of the metric is better (its floor is a "
                        "ceiling), else 0", labels=["metric", "model_version"]),
    }
    for metric in names:
        if live.get(metric) is not None:
            gauges["value"].add_metric([metric, version], float(live[metric]))
        gauges["lower"].add_metric([metric, version], float(lower_is_better(metric)))
    for metric, value in live["floors"].items():
        gauges["floor"].add_metric([metric, version], float(value))
    yield from gauges.values()


def _single(family: Any, name: str, doc: str, version: str, value: Any) -> Any:
    gauge = family(name, doc, labels=["model_version"])
    if value is not None:
        gauge.add_metric([version], float(value))
    return gauge


def serve_exporter(folder: Path, ttl_s: float, host: str, port: int) -> None:
    """Serve `/metrics` on host:port until interrupted."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(folder, ttl_s))  # type: ignore[arg-type]
    registry.register(RetrainStatusCollector(folder))  # type: ignore[arg-type]
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("monitor exporter on http://%s:%d/metrics, reading %s", host, port, folder)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
