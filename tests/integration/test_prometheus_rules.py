"""The Prometheus, Alertmanager and Grafana configs in infra/, checked by the real tools.

promtool checks the config and rules and runs the rule unit tests (infra/prometheus/tests:
input series -> expected alerts, firing and staying quiet); amtool checks Alertmanager's config
and where each alert is routed. The Grafana dashboard cannot be loaded here (no Grafana), so
its JSON is checked for what Grafana needs, and its queries are checked by a real Prometheus
in tests/e2e/test_monitoring_loop.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.conftest import REPO, require_program
from tests.promql import metric_names

PROMETHEUS = REPO / "infra" / "prometheus"
ALERTMANAGER = REPO / "infra" / "alertmanager" / "alertmanager.yml"
DASHBOARD = REPO / "infra" / "grafana" / "dashboards" / "flywheel.json"
RUNBOOK = REPO / "docs" / "runbook.md"


def _run(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def recording_rules() -> dict[str, str]:
    groups = yaml.safe_load((PROMETHEUS / "rules" / "recording.yml").read_text())["groups"]
    return {rule["record"]: rule["expr"] for group in groups for rule in group["rules"]}


def test_promtool_accepts_config_and_rules() -> None:
    promtool = require_program("promtool")
    out = _run(promtool, "check", "config", PROMETHEUS / "prometheus.yml")
    assert "SUCCESS" in out and "rules found" in out
    _run(promtool, "check", "rules", *sorted((PROMETHEUS / "rules").glob("*.yml")))


def test_rule_unit_tests_pass() -> None:
    promtool = require_program("promtool")
    out = _run(promtool, "test", "rules", *sorted((PROMETHEUS / "tests").glob("*.yml")))
    assert "FAILED" not in out


def test_promtool_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """The unit tests fail when a rule changes: a drift alert that needs twice the PSI."""
    promtool = require_program("promtool")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "recording.yml").write_text((PROMETHEUS / "rules" / "recording.yml").read_text())
    broken = (
        (PROMETHEUS / "rules" / "alerts.yml")
        .read_text()
        .replace("(flywheel_feature_drifted) == 1", "(flywheel_feature_drifted) == 2")
    )
    (rules / "alerts.yml").write_text(broken)
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "quality_test.yml").write_text((PROMETHEUS / "tests" / "quality_test.yml").read_text())
    done = subprocess.run(
        [promtool, "test", "rules", str(tests / "quality_test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "FlywheelFeatureDrift" in done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts with no test where they fire"
    assert names - quiet == set(), "alerts with no test where they must stay quiet"


def test_every_alert_has_for_severity_and_a_runbook_section() -> None:
    anchors = {_anchor(line) for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}
    for rule in alert_rules():
        name = rule["alert"]
        assert rule.get("for"), f"{name} has no `for:`"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), f"{name} has no {key}"
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/runbook.md" and anchor in anchors, f"{name}: no runbook section"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^a-z0-9 _-]", "", text).replace(" ", "-")


def test_alertmanager_config_and_routes() -> None:
    amtool = require_program("amtool")
    _run(amtool, "check-config", ALERTMANAGER)
    retrain = {rule["alert"] for rule in alert_rules() if rule["labels"].get("action") == "retrain"}
    assert retrain == {"FlywheelFeatureDrift", "FlywheelScoreDrift", "FlywheelLiveMetricDecay"}
    for rule in alert_rules():
        labels = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in rule["labels"].items())]
        out = _run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
        expected = "flywheel-retrain" if rule["alert"] in retrain else "operators"
        assert out.split()[0] == expected, rule["alert"]
    config = yaml.safe_load(ALERTMANAGER.read_text())
    webhook = next(r for r in config["receivers"] if r["name"] == "flywheel-retrain")
    assert webhook["webhook_configs"][0]["send_resolved"] is True


def test_dashboard_json_has_what_grafana_needs() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    datasource = yaml.safe_load(
        (REPO / "infra/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("traffic", "latency", "error", "class", "drift", "live", "version"):
        assert topic in titles, f"no panel about {topic}"


def test_rules_and_dashboard_name_only_known_metrics() -> None:
    """Each metric a rule or panel reads is one the service or the exporter declares."""
    recorded = recording_rules()
    used = set()
    for expr in [*recorded.values(), *(r["expr"] for r in alert_rules()), *dashboard_exprs()]:
        used |= metric_names(expr)
    assert used - set(recorded) <= exported_metric_names() | {"up"}, (
        used - set(recorded) - exported_metric_names()
    )


def dashboard_exprs() -> list[str]:
    """The dashboard's queries with Grafana's variables replaced, as Prometheus will see them."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        t["expr"].replace("$__rate_interval", "1m")
        for panel in dashboard["panels"]
        for t in panel["targets"]
    ]


def exported_metric_names() -> set[str]:
    """Series names declared in code: the service's metrics, BentoML's, the exporter's."""
    from flywheel.serving.canary_metrics import routed_metrics
    from flywheel.serving.metrics import serving_metrics
    from flywheel.serving.shadow_metrics import shadow_metrics

    names = _family_names(vars(serving_metrics()).values())
    names |= _family_names(vars(shadow_metrics()).values())
    names |= _family_names(vars(routed_metrics()).values())
    names |= {
        f"bentoml_service_request_{n}"
        for n in (
            "total",
            "duration_seconds_bucket",
            "duration_seconds_count",
            "duration_seconds_sum",
            "in_progress",
        )
    }
    names |= _exporter_names()
    return names


def _family_names(metrics: object) -> set[str]:
    names: set[str] = set()
    for metric in metrics:  # type: ignore[attr-defined]
        for family in metric.collect():
            names |= {sample.name for sample in family.samples} | {family.name}
            if family.type == "counter":
                names.add(f"{family.name}_total")
            if family.type == "histogram":
                names |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
    return names


def _exporter_names() -> set[str]:
    """The exporter's families for a report that has every section filled."""
    from prometheus_client.core import GaugeMetricFamily

    from flywheel.monitoring.exporter import add_report
    from flywheel.monitoring.gauges import GaugeSet

    scores = {"psi": 0.1, "js": 0.1, "threshold": 0.2, "drifted": False}
    report = {
        "model_version": "1",
        "features": {"tenure": scores},
        "score": scores,
        "window": {"rows": 10},
        "enough_traffic": True,
        "drifted": False,
        "live": {"roc_auc": 0.8, "floors": {"roc_auc": 0.75}},
    }
    gauges = GaugeSet(GaugeMetricFamily)
    add_report(gauges, "flywheel-churn", report)
    names = {family.name for family in gauges.families()}
    return names | {"flywheel_monitor_report_timestamp_seconds"}
