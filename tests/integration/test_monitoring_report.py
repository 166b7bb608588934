"""The monitor report over a generated inference log, against a real (temp) MLflow registry.

The champion is a registered version whose run carries a reference profile of the default
table; the log holds rows of that table as the service writes them, clean or shifted (one
numeric feature scaled, one category's share flipped). `flywheel monitor --json` runs as a
user runs it, in a subprocess.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flywheel.config import Params
from flywheel.data.io import feature_frame
from flywheel.data.spec import DatasetSpec
from flywheel.settings import Settings
from tests.conftest import REPO, run_cli


def churn_score(frame: pd.DataFrame) -> np.ndarray:
    """A stand-in model: any fixed function of the features will do for drift of the score."""
    return 1 / (1 + np.exp(-(frame["monthly_charges"].to_numpy() - 70) / 20))


@pytest.fixture(scope="module")
def reference(spec: DatasetSpec, default_table: pd.DataFrame) -> pd.DataFrame:
    return feature_frame(spec, default_table)


@pytest.fixture(scope="module")
def champion(
    tmp_path_factory: pytest.TempPathFactory,
    params: Params,
    spec: DatasetSpec,
    reference: pd.DataFrame,
) -> str:
    """A temp store whose champion (version 1) carries the reference profile; its URI."""
    import mlflow

    from flywheel.monitoring.profile import build_profile, log_profile

    store = tmp_path_factory.mktemp("monitor-registry")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("monitor", artifact_location=(store / "mlruns").as_uri())
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            log_profile(build_profile(spec, reference, churn_score(reference), params.monitor))
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  (None unsets it)
    name = params.promote.model_name
    client.create_registered_model(name)
    version = client.create_model_version(
        name, f"{run.info.artifact_uri}/monitoring", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, "champion", version.version)
    return uri


def write_log(
    folder: Path,
    spec: DatasetSpec,
    frame: pd.DataFrame,
    version: str,
    when: datetime,
    prefix: str = "r",
) -> list[str]:
    """Rows as the service's inference log holds them (same columns and types); their ids."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [f"{prefix}{i}" for i in range(len(frame))]
    columns: dict[str, Any] = {
        "request_id": pa.array(ids, pa.string()),
        "time": pa.array([when] * len(frame), pa.timestamp("us", tz="UTC")),
        "model_version": pa.array([version] * len(frame), pa.string()),
    }
    for feature in spec.features:
        kind = pa.float64() if feature.kind == "numeric" else pa.string()
        columns[feature.name] = pa.array(frame[feature.name], kind, from_pandas=True)
    score = churn_score(frame)
    columns["prediction"] = pa.array(np.where(score >= 0.5, "Yes", "No"), pa.string())
    columns["probability"] = pa.array(score, pa.float64())
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), folder / f"{prefix}-{len(frame)}.parquet")
    return ids


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    """Monthly charges up by half; every month-to-month contract becomes a two-year one."""
    out = frame.copy()
    out["monthly_charges"] = out["monthly_charges"] * 1.5
    out["contract"] = out["contract"].replace({"Month-to-month": "Two year"})
    return out


def own(root: Path) -> Path:
    """The default model's folder under a log root (`flywheel.model_logs`)."""
    from flywheel.config import load_params

    return root / load_params(REPO / "params.yaml").promote.model_name


def settings_for(tmp: Path, uri: str) -> Settings:
    return Settings(
        root=REPO,
        tracking_uri=uri,
        inference_log_dir=tmp / "inference",
        monitor_dir=tmp / "monitor",
        feedback_dir=tmp / "feedback",
    )


def test_clean_traffic_is_not_drift_and_little_traffic_is_not_either(
    tmp_path: Path, champion: str, params: Params, spec: DatasetSpec, reference: pd.DataFrame
) -> None:
    from flywheel.monitoring.report import compute_report

    now = datetime.now(UTC)
    settings = settings_for(tmp_path, champion)
    write_log(
        own(settings.inference_log), spec, shifted(reference.sample(100, random_state=1)), "1", now
    )
    little = compute_report(settings, params)
    assert little["window"]["rows"] == 100 and not little["enough_traffic"]
    assert little["drifted"] is False and little["features"]["monthly_charges"]["psi"] > 0.5
    assert not any(f["drifted"] for f in little["features"].values())

    clean = tmp_path / "clean"
    settings = settings_for(clean, champion)
    write_log(own(settings.inference_log), spec, reference.sample(3000, random_state=2), "1", now)
    # Rows of another version and rows older than the window are not this window's traffic.
    write_log(own(settings.inference_log), spec, shifted(reference.head(900)), "7", now, prefix="o")
    write_log(
        own(settings.inference_log),
        spec,
        shifted(reference.head(900)),
        "1",
        now - timedelta(minutes=params.monitor.window_minutes + 5),
        prefix="x",
    )
    report = compute_report(settings, params)
    assert report["window"]["rows"] == 3000 and report["enough_traffic"]
    assert report["drifted"] is False, {n: f for n, f in report["features"].items() if f["drifted"]}
    assert report["model_version"] == "1"


def test_monitor_cli_reports_the_shifted_features(
    tmp_path: Path, champion: str, spec: DatasetSpec, reference: pd.DataFrame
) -> None:
    write_log(
        tmp_path / "inference",
        spec,
        shifted(reference.sample(2000, random_state=3)),
        "1",
        datetime.now(UTC),
    )
    done = run_cli(
        REPO,
        "monitor",
        "--json",
        FLYWHEEL_TRACKING_URI=champion,
        FLYWHEEL_INFERENCE_LOG_DIR=str(tmp_path / "inference"),
        FLYWHEEL_MONITOR_DIR=str(tmp_path / "monitor"),
        FLYWHEEL_FEEDBACK_DIR=str(tmp_path / "feedback"),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    drifted = {name for name, f in report["features"].items() if f["drifted"]}
    assert report["drifted"] is True and report["window"]["rows"] == 2000
    assert drifted == {"monthly_charges", "contract"}
    assert report["score"]["drifted"] is True
    assert report["features"]["monthly_charges"]["wasserstein"] > 0.5
    # The log written in the old layout (the root itself) was adopted by the default model.
    assert not list((tmp_path / "inference").glob("*.parquet"))
    saved = json.loads((own(tmp_path / "monitor") / "latest.json").read_text())
    assert saved["generated_at"] == report["generated_at"]
    page = (own(tmp_path / "monitor") / "report.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page.split("<body>")[1]


def test_labels_that_contradict_the_scores_are_decay(
    tmp_path: Path, champion: str, params: Params, spec: DatasetSpec, reference: pd.DataFrame
) -> None:
    from flywheel.monitoring.feedback import store_feedback
    from flywheel.monitoring.report import compute_report

    settings = settings_for(tmp_path, champion)
    rows = reference.sample(300, random_state=4)
    ids = write_log(own(settings.inference_log), spec, rows, "1", datetime.now(UTC))
    wrong = np.where(churn_score(rows) < 0.5, "Yes", "No")  # the model is always wrong
    store_feedback(own(settings.feedback), pd.DataFrame({"request_id": ids, "label": wrong}))
    store_feedback(own(settings.feedback), pd.DataFrame({"request_id": ids[:1], "label": ["No"]}))

    live = compute_report(settings, params)["live"]
    assert live["labelled_rows"] == 300  # the later label for ids[0] replaced the first
    assert live["roc_auc"] < 0.5 and live["decayed"] is True
    assert "roc_auc" in live["breaches"] and live["floors"]["roc_auc"] == 0.75
    assert set(live["per_version"]) == {"1"} and live["windows"][0]["labelled_rows"] == 300


def test_a_column_missing_from_the_log_is_left_out_never_a_failure(
    tmp_path: Path, champion: str, params: Params, spec: DatasetSpec, reference: pd.DataFrame
) -> None:
    """A personal feature dropped by the service (no salt) is absent from the log's files."""
    import pyarrow.parquet as pq

    from flywheel.monitoring.page import render_page
    from flywheel.monitoring.report import compute_report

    settings = settings_for(tmp_path, champion)
    write_log(
        own(settings.inference_log), spec, reference.sample(1500, random_state=5), "1",
        datetime.now(UTC),
    )
    path = next(own(settings.inference_log).glob("*.parquet"))
    pq.write_table(pq.read_table(path).drop_columns(["monthly_charges"]), path)
    report = compute_report(settings, params)
    assert "monthly_charges" not in report["features"]
    assert "not in the inference log" in report["excluded"]["monthly_charges"]
    assert report["drift"]["tests"] == len(report["features"]) + 1  # the score is a test too
    assert "Holm" in report["drift"]["rule"] and report["drifted"] is False
    assert "monthly_charges: not in the inference log" in render_page(report)


def test_personal_features_are_not_profiled_and_scores_keep_their_rows(
    params: Params, spec: DatasetSpec, reference: pd.DataFrame
) -> None:
    from flywheel.monitoring.profile import PII_REASON, build_profile

    personal = spec.model_copy(
        update={
            "features": [f.model_copy(update={"pii": f.name == "contract"}) for f in spec.features]
        }
    )
    held_out = churn_score(reference.head(700))
    profile = build_profile(personal, reference, held_out, params.monitor)
    assert "contract" not in profile["features"] and profile["excluded"] == {"contract": PII_REASON}
    assert profile["score"]["rows"] == 700 and profile["rows"] == len(reference)
