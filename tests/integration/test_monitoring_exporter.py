"""`flywheel monitor-exporter` as Prometheus scrapes it: gauges of the latest report, expiring."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flywheel.monitoring.report import write_report
from tests.conftest import REPO, cli_command, cli_env
from tests.integration.serving.conftest import free_port

pytestmark = pytest.mark.slow


def report(generated_at: datetime) -> dict[str, Any]:
    feature = {"psi": 0.42, "js": 0.3, "missing_rate_change": 0.0, "threshold": 0.1,
               "drifted": True}
    return {
        "model_name": "flywheel-churn", "model_version": "3",
        "generated_at": generated_at.isoformat(),
        "window": {"rows": 1200, "start": "", "end": "", "min_rows": 500},
        "enough_traffic": True, "drifted": True,
        "features": {"tenure": {**feature, "wasserstein": 0.5},
                     "contract": {**feature, "psi": 0.01, "drifted": False,
                                  "unseen_rate": 0.0}},
        "score": {"psi": 0.2, "js": 0.1, "threshold": 0.1, "drifted": True},
        "live": {"labelled_rows": 300, "roc_auc": 0.7, "pr_auc": None, "brier": 0.21,
                 "positive_rate": 0.3, "floors": {"roc_auc": 0.75, "brier": 0.2},
                 "decayed": True, "per_version": {}, "windows": []},
    }


@pytest.fixture()
def exporter(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    env = cli_env(REPO, FLYWHEEL_MONITOR_DIR=str(tmp_path))
    process = subprocess.Popen(cli_command("monitor-exporter", "--port", str(port)),
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.25)
        yield url, tmp_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_gauges_follow_the_latest_report_and_expire(exporter: tuple[str, Path]) -> None:
    url, root = exporter
    assert scrape(url) == {}  # no report yet: nothing to say, no made-up zeros

    now = datetime.now(UTC)
    folder = root / "flywheel-churn"  # each model's own folder (flywheel.model_logs)
    write_report(report(now), folder, html=False)
    values = scrape(url)
    model = (("model_name", "flywheel-churn"),)
    v3 = (*model, ("model_version", "3"))
    assert values[("flywheel_feature_drift_psi", (("feature", "tenure"), *v3))] == 0.42
    assert values[("flywheel_feature_drifted", (("feature", "tenure"), *v3))] == 1
    assert values[("flywheel_feature_drifted", (("feature", "contract"), *v3))] == 0
    assert values[("flywheel_feature_drift_threshold", (("feature", "contract"), *v3))] == 0.1
    assert values[("flywheel_score_drifted", v3)] == 1
    assert values[("flywheel_drift_window_rows", v3)] == 1200
    assert values[("flywheel_drift_enough_traffic", v3)] == 1
    assert values[("flywheel_live_roc_auc", v3)] == 0.7
    assert ("flywheel_live_pr_auc", v3) not in values  # undefined metrics are left out
    assert values[("flywheel_live_metric_floor", (("metric", "brier"), *v3))] == 0.2
    assert values[("flywheel_monitor_report_timestamp_seconds", model)] == pytest.approx(
        now.timestamp())

    other = {**report(now), "model_name": "flywheel-credit", "model_version": "1"}
    write_report(other, root / "flywheel-credit", html=False)  # a second model, same version set
    both = scrape(url)
    assert both[("flywheel_feature_drift_psi", (("feature", "tenure"), *v3))] == 0.42
    credit = (("model_name", "flywheel-credit"), ("model_version", "1"))
    assert both[("flywheel_drift_window_rows", credit)] == 1200  # beside churn's, not over it
    assert both[("flywheel_drift_window_rows", v3)] == 1200

    old = now - timedelta(hours=3)  # older than params monitor.report_ttl_s (2 h)
    write_report(report(old), folder, html=False)
    expired = scrape(url)
    assert expired[("flywheel_monitor_report_timestamp_seconds", model)] == pytest.approx(
        old.timestamp())
    assert not [key for key in expired if dict(key[1]).get("model_name") == "flywheel-churn"
                and key[0] != "flywheel_monitor_report_timestamp_seconds"]
