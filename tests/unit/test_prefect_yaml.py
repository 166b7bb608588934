"""prefect.yaml names real flows and valid schedules; `prefect deploy` would accept it."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_deployments_point_at_flows_with_valid_schedules() -> None:
    from prefect import Flow
    from prefect.client.schemas.schedules import CronSchedule

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert config["deployments"], "prefect.yaml declares no deployment"
    for deployment in config["deployments"]:
        path, func = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, func), Flow), deployment["name"]
        assert deployment["work_pool"]["name"]
        for schedule in deployment.get("schedules", []):
            CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
