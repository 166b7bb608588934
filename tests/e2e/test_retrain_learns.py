"""A drift-triggered retrain learns from labelled traffic, on a real project, with real parts.

The pipeline trains and registers the first champion (a Prefect run, DVC-tracked data, the
project's SQLite registry); `flywheel serve` answers drifted requests, whose labels arrive
later through `/feedback`; the training flow is then called with a reason, as the retrain
automation calls it. That run appends the labelled requests to the table as a new DVC version
with their provenance, and the gate judges a version trained on it. A second trigger with no
new labels trains nothing and says so: in its log, its summary artifact and the exporter's
metrics. Tests run in file order and share the project and the service.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.alerting import start
from tests.conftest import REPO, make_project, shrink_params
from tests.integration.serving.conftest import free_port, wait_for

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
MODEL = "flywheel-churn"
TABLE_ROWS = 7043  # the default table
LABELLED, UNLABELLED = 90, 15
REASON = "alert: FlywheelFeatureDrift feature=monthly_charges model_version=1"
START_TIMEOUT_S = 180


@dataclass
class Project:
    root: Path
    tokens: Path
    monitor: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Project]:
    tmp = tmp_path_factory.mktemp("retrain")
    root = make_project(tmp / "project")
    shrink_params(
        root / "params.yaml",
        train={"candidates": ["logreg"]},
        promote={"bootstrap": {"resamples": 200}},
        serve={"inference_log_roll_seconds": 1, "reload_interval_s": 1},
    )
    # The code too, as in a clone: dvc.yaml's stages depend on it, so DVC can tell what is
    # up to date (without it every step runs every time).
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "a logreg project"], cwd=root, check=True)
    dirs = {name: tmp / name for name in ("log", "feedback", "monitor", "bentoml")}
    env = {
        "PREFECT_API_URL": prefect_server,
        "FLYWHEEL_ROOT": str(root),
        "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site"),
        "FLYWHEEL_INFERENCE_LOG_DIR": str(dirs["log"]),
        "FLYWHEEL_FEEDBACK_DIR": str(dirs["feedback"]),
        "FLYWHEEL_MONITOR_DIR": str(dirs["monitor"]),
        "FLYWHEEL_TOKENS_FILE": str(tmp / "tokens.json"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("FLYWHEEL_TRACKING_URI", raising=False)
        mp.chdir(root)
        yield Project(root, tmp / "tokens.json", dirs["monitor"], env)


def training(reason: str | None = None) -> list[dict[str, Any]]:
    from pipelines.training import training as flow

    return list(flow(reason=reason))


def registry() -> Any:
    from flywheel.registry.store import connect
    from flywheel.settings import settings

    return connect(settings())


def table(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data" / "wa_churn.csv")


def test_the_pipeline_trains_the_first_champion(project: Project) -> None:
    report = training()
    assert report[-1]["summary"]["promoted"], report[-1]["summary"]["reason"]
    assert report[-1]["summary"]["champion_after"] == "1"


@pytest.fixture(scope="module")
def service(project: Project) -> Iterator[httpx.Client]:
    """`flywheel serve` on the project, logging every request (rolled each second)."""
    port = free_port()
    env = {**os.environ, **project.env, "BENTOML_HOME": str(project.root.parent / "bentoml")}
    with ExitStack() as stack:
        running = start(
            stack,
            "serve",
            [str(BIN / "flywheel"), "serve", "--port", str(port)],
            cwd=project.root.parent,
            env={**env, "FLYWHEEL_ROOT": str(project.root)},
            url=f"http://127.0.0.1:{port}",
            probe="/readyz",
        )
        with httpx.Client(base_url=running.url, timeout=30) as client:
            yield client


def drifted_rows(root: Path) -> pd.DataFrame:
    """Real rows with charges up 60% and contracts swapped, their true labels kept."""
    rows = table(root).iloc[: LABELLED + UNLABELLED].copy()
    swap = {"Month-to-month": "Two year", "Two year": "Month-to-month"}
    rows["monthly_charges"] = (rows["monthly_charges"] * 1.6).round(2)
    rows["contract"] = rows["contract"].map(lambda c: swap.get(c, c))
    return rows


def request_bodies(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows' features as JSON records (a missing value as null)."""
    from flywheel.data.spec import load_spec

    names = load_spec(Path("specs/wa_churn.yaml")).feature_names
    return list(json.loads(rows[names].to_json(orient="records")))


def logged_ids(folder: Path) -> set[str]:
    import pyarrow.parquet as pq

    return {
        i
        for path in folder.glob("*.parquet")
        for i in pq.read_table(path, columns=["request_id"]).column(0).to_pylist()
    }


def test_drifted_traffic_gets_delayed_labels(project: Project, service: httpx.Client) -> None:
    from flywheel.tokens import local_tokens

    rows = drifted_rows(project.root)
    answered = []
    bodies = request_bodies(rows)
    for body, label in zip(bodies, rows["churn"], strict=True):  # a label names one record
        answer = service.post("/predict", json=body)
        assert answer.status_code == 200, answer.text
        answered.append((answer.headers["x-request-id"], label))
    batch = service.post("/predict", json=bodies[:3])
    assert batch.status_code == 200
    batch_id = batch.headers["x-request-id"]
    ids = {i for i, _ in answered} | {batch_id}
    log = Path(project.env["FLYWHEEL_INFERENCE_LOG_DIR"]) / MODEL  # the model's own folder
    wait_for(lambda: ids <= logged_ids(log), 60, "the requests in the inference log")
    labels = [{"request_id": i, "label": y} for i, y in answered[:LABELLED]]
    labels.append({"request_id": batch_id, "label": "Yes"})  # a batch: not learned from
    token = local_tokens(project.tokens)["feedback"]
    stored = service.post("/feedback", json=labels, headers={"Authorization": f"Bearer {token}"})
    assert stored.status_code == 200 and stored.json() == {"accepted": LABELLED + 1}
    LABELLED_IDS.extend(i for i, _ in answered[:LABELLED])


LABELLED_IDS: list[str] = []


def test_a_triggered_retrain_learns_the_labelled_traffic(project: Project) -> None:
    from flywheel.data.snapshot import recorded_md5

    before = recorded_md5(project.root)
    report = training(reason=REASON)
    assert all("skipped" not in row["summary"] for row in report), report
    grown = table(project.root)
    assert len(grown) == TABLE_ROWS + LABELLED  # the new unique labelled rows, once each
    assert grown["rownames"].tail(LABELLED).tolist() == list(range(7044, 7044 + LABELLED))
    assert (grown["monthly_charges"].tail(LABELLED) > 0).all()
    record = json.loads((project.root / "data/provenance/traffic-0001.json").read_text())
    assert set(record["request_ids"]) == set(LABELLED_IDS)
    assert record["rows"] == LABELLED and record["served_by"] == {"1": LABELLED}
    assert record["left_out"] == {"batch_requests": 1, "already_in_table": 0}
    assert record["time_from"] <= record["time_to"] and record["reason"] == REASON
    # The new data is its own DVC version, and version 2 was trained on it, judged by the gate.
    after = recorded_md5(project.root)
    assert after != before
    splits = project.root / "artifacts" / "featurize"
    assert (
        sum(len(pd.read_parquet(splits / f"{s}.parquet")) for s in ("train", "valid", "test"))
        == TABLE_ROWS + LABELLED
    )
    tags = registry().get_model_version(MODEL, "2").tags
    assert tags["flywheel.data_md5"] == after
    assert tags["flywheel.retrain_reason"] == REASON
    assert tags["flywheel.data_refresh"].startswith(f"appended {LABELLED} labelled rows")
    assert "data/provenance/traffic-0001.json" in tags["flywheel.data_refresh"]
    assert tags["flywheel.gate.verdict"] in {"promoted", "rejected"}, tags
    status = json.loads((project.monitor / MODEL / "retrain.json").read_text())
    assert status["outcome"] == "new_rows" and status["new_rows"] == LABELLED


def test_a_second_trigger_with_no_new_labels_says_no_new_data(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="flywheel"):
        report = training(reason=REASON)
    assert all("skipped" in row["summary"] for row in report), report
    champion = registry().get_model_version_by_alias(MODEL, "champion").version
    said = [r.getMessage() for r in caplog.records if "no new data since v2" in r.getMessage()]
    assert said and f"champion v{champion} of {MODEL} keeps serving" in said[0]
    assert "already_in_table: " + str(LABELLED) in said[0]
    assert "no new data since v2" in summary_artifact()
    assert len(table(project.root)) == TABLE_ROWS + LABELLED
    metrics = exporter_metrics(project)
    assert (f'flywheel_retrain_status{{model_name="{MODEL}",outcome="no_new_data",'
            'since_version="2"} 1.0') in metrics
    assert f'flywheel_retrain_new_rows{{model_name="{MODEL}"}} 0.0' in metrics


def summary_artifact() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(sort=ArtifactSort.CREATED_DESC, limit=1)
    return str(found[0].data)


def exporter_metrics(project: Project) -> str:
    """What Prometheus would scrape from the real `flywheel monitor-exporter`."""
    port = free_port()
    with ExitStack() as stack:
        running = start(
            stack,
            "exporter",
            [str(BIN / "flywheel"), "monitor-exporter", "--port", str(port)],
            cwd=project.monitor,
            env={**os.environ, **project.env},
            url=f"http://127.0.0.1:{port}",
            probe="/metrics",
        )
        return httpx.get(running.url + "/metrics", timeout=10).text


def test_each_version_s_data_is_restorable(project: Project) -> None:
    from flywheel.registry.data_version import checkout_version
    from flywheel.settings import settings

    checkout_version(settings(), MODEL, "1")
    assert len(table(project.root)) == TABLE_ROWS
    assert not (project.root / "data" / "provenance").exists()
    checkout_version(settings(), MODEL, "2")
    assert len(table(project.root)) == TABLE_ROWS + LABELLED
    assert (project.root / "data/provenance/traffic-0001.json").is_file()
