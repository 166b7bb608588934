"""The retraining decisions and the alert receiver's rules, without servers; and the values
that prefect.yaml and the alert rules must share with params.yaml."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from pipelines.alert_receiver import event_for, parse_notification
from pipelines.monitoring import cooldown_key, retrain_reason, retraining_event
from tests.conftest import REPO

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"  # two firings' startsAt


def report(drifted: list[str], enough: bool = True, decayed: bool = False) -> dict:
    features = {name: {"drifted": name in drifted} for name in ("tenure", "contract")}
    return {
        "model_version": "3",
        "enough_traffic": enough,
        "drifted": enough and bool(drifted),
        "features": features,
        "score": {"drifted": "score" in drifted},
        "live": {
            "decayed": decayed,
            "roc_auc": 0.7012,
            "brier": 0.12,
            "floors": {"roc_auc": 0.75, "brier": 0.2},
            "breaches": ["roc_auc"] if decayed else [],
        },
    }


def test_retrain_reason_names_what_drifted_or_decayed() -> None:
    assert retrain_reason(report([])) is None
    assert retrain_reason(report(["tenure"], enough=False)) is None
    assert retrain_reason(report(["tenure", "score"])) == (
        "monitor: drift: tenure, score (model version 3)"
    )
    assert retrain_reason(report([], decayed=True)) == (
        "monitor: decay: roc_auc=0.701 (floor 0.75) (model version 3)"
    )


def test_cooldown_key_is_one_per_window() -> None:
    start = 6 * 3600 * 1000  # the start of a 6-hour window
    assert cooldown_key(360, start) == cooldown_key(360, start + 6 * 3600 - 1)
    assert cooldown_key(360, start) != cooldown_key(360, start + 6 * 3600)
    assert cooldown_key(0, start) is None


def test_the_flow_asks_for_retraining_with_the_receivers_event() -> None:
    """One event for both ways in, so the automation's one cool-down covers both."""
    start = 6 * 3600 * 1000
    flow = retraining_event({**report(["tenure"]), "model_name": "churn"}, "monitor: x", 360, start)
    alert = event_for(
        parse_notification(body("firing", [("firing", "FlywheelFeatureDrift", T0)])), "churn"
    )
    assert alert is not None
    assert flow["event"] == alert["event"] == "flywheel.alert.firing"
    assert flow["resource"] == alert["resource"]
    assert flow["payload"]["reason"] == "monitor: x"
    assert flow["payload"]["model_version"] == "3"
    same_window = retraining_event({**report([]), "model_name": "churn"}, "y", 360, start + 60)
    next_window = retraining_event(
        {**report([]), "model_name": "churn"}, "y", 360, start + 6 * 3600
    )
    other_model = retraining_event({**report([]), "model_name": "other"}, "y", 360, start)
    assert flow["id"] == same_window["id"]
    assert len({flow["id"], next_window["id"], other_model["id"]}) == 3


def body(status: str, alerts: list[tuple[str, str, str]], group: str = "g") -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": group,
            "status": status,
            "alerts": [
                {
                    "status": s,
                    "labels": {"alertname": name, "feature": "tenure"},
                    "startsAt": starts,
                }
                for s, name, starts in alerts
            ],
        }
    ).encode()


def test_receiver_ignores_resolved_and_keys_by_group_and_start() -> None:
    resolved = parse_notification(body("resolved", [("resolved", "FlywheelFeatureDrift", T0)]))
    assert event_for(resolved, "m") is None
    mixed = parse_notification(
        body(
            "firing",
            [("firing", "FlywheelFeatureDrift", T0), ("resolved", "FlywheelScoreDrift", T0)],
        )
    )
    event = event_for(mixed, "churn")
    assert event is not None
    assert event["payload"]["alertnames"] == ["FlywheelFeatureDrift"]
    assert event["payload"]["reason"] == "alert: FlywheelFeatureDrift feature=tenure"
    assert event["resource"]["prefect.resource.id"] == "flywheel.model.churn"
    same = event_for(
        parse_notification(body("firing", [("firing", "FlywheelFeatureDrift", T0)])), "churn"
    )
    later = event_for(
        parse_notification(body("firing", [("firing", "FlywheelFeatureDrift", T1)])), "churn"
    )
    assert same is not None and later is not None
    assert same["id"] == event["id"] != later["id"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"version": "4", "status": "firing", "alerts": []}', "groupKey"),
        (b'{"version": "3", "groupKey": "g", "status": "firing", "alerts": []}', "version"),
        (b'{"version": "4", "groupKey": "g", "status": "on fire", "alerts": []}', "status"),
        (b"[1, 2", "body"),
    ],
)
def test_receiver_rejects_bad_payloads_naming_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(ValueError, match=field) as caught:
        parse_notification(payload)
    assert "\n" not in str(caught.value)


def test_deployments_and_rules_agree_with_params() -> None:
    from flywheel.config import load_params

    monitor = load_params(REPO / "params.yaml").monitor
    deployments = {
        d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    }
    [trigger] = deployments["nightly"]["triggers"]
    assert trigger["within"] == monitor.retrain_cooldown_minutes * 60
    assert deployments["hourly"]["schedules"][0]["cron"] == monitor.schedule
    rules = (REPO / "infra/prometheus/rules/alerts.yml").read_text()
    assert re.search(rf"flywheel_live_labelled_rows >= {monitor.min_labelled_rows}\b", rules)
