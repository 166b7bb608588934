"""The shadow comparison's formulas, pinned on a hand-written inference log.

Log: an old file without roles (the champion's), then three shadowed requests: r1 with two
records, r2 with one, r3 whose challenger failed. Champion version 1, challenger version 2.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.data.task import Task
from flywheel.monitoring.logread import read_log
from flywheel.monitoring.shadow_report import shadow_report
from flywheel.serving.shadow_scoring import agreement

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
T = NOW - timedelta(minutes=5)

# request, role, version, prediction, probability, latency of the challenger's request
ROWS = [
    ("r1", "champion", "1", "Yes", 0.8, None),
    ("r1", "champion", "1", "No", 0.3, None),
    ("r2", "champion", "1", "No", 0.2, None),
    ("r3", "champion", "1", "Yes", 0.9, None),
    ("r1", "challenger", "2", "Yes", 0.6, 0.010),
    ("r1", "challenger", "2", "Yes", 0.55, 0.010),
    ("r2", "challenger", "2", "No", 0.1, 0.030),
    ("r3", "challenger", "2", None, None, 0.002),
]

BINARY = Task("binary", ("No", "Yes"))


def _write(folder: Path, name: str, table: dict[str, list[object]]) -> None:
    n = len(table["request_id"])
    table = {**table, "time": pa.array([T] * n, pa.timestamp("us", tz="UTC"))}
    pq.write_table(pa.table(table), folder / name)


@pytest.fixture()
def log_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "log"
    folder.mkdir()
    _write(folder, "inference-20261203T115000000000-1-00001.parquet",
           {"request_id": ["old"], "model_version": ["1"], "prediction": ["No"],
            "probability": [0.4]})
    columns = list(zip(*ROWS, strict=True))
    _write(folder, "inference-20261203T115900000000-1-00002.parquet",
           {"request_id": list(columns[0]), "role": list(columns[1]),
            "model_version": list(columns[2]), "prediction": list(columns[3]),
            "probability": pa.array(columns[4], pa.float64()),
            "latency_s": pa.array(columns[5], pa.float64())})
    return folder


@pytest.fixture()
def feedback_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "feedback"
    folder.mkdir()
    pd.DataFrame({"request_id": ["r1", "r2", "r3"], "label": ["Yes", "No", "Yes"],
                  "received_at": [NOW] * 3}).to_parquet(folder / "labels.parquet")
    return folder


def test_readers_get_the_champions_rows_only_unless_they_ask(log_folder: Path) -> None:
    champion = read_log(log_folder, ["request_id", "model_version"])
    assert champion.column("request_id").to_pylist() == ["old", "r1", "r1", "r2", "r3"]
    assert set(champion.column("model_version").to_pylist()) == {"1"}
    challenger = read_log(log_folder, ["request_id"], role="challenger")
    assert challenger.column("request_id").to_pylist() == ["r1", "r1", "r2", "r3"]
    assert read_log(log_folder, ["request_id"], role=None).num_rows == 9


def test_report_figures_by_hand(log_folder: Path, feedback_folder: Path) -> None:
    report = shadow_report(log_folder, feedback_folder, BINARY, NOW, window_minutes=60)
    assert list(report["challengers"]) == ["2"]
    c = report["challengers"]["2"]
    assert c["champion_versions"] == ["1"]
    assert (c["requests"], c["records"], c["compared_records"], c["errors"]) == (3, 4, 3, 1)
    assert c["agreement_rate"] == pytest.approx(2 / 3)  # r1#0 and r2 agree, r1#1 does not
    assert c["mean_score_distance"] == pytest.approx((0.2 + 0.25 + 0.1) / 3)
    assert c["max_score_distance"] == pytest.approx(0.25)
    assert c["error_rate"] == pytest.approx(1 / 4)
    # Per request: 10, 30, 2 ms; p95 interpolates between 10 and 30 at 0.9.
    assert c["latency_s"]["median"] == pytest.approx(0.010)
    assert c["latency_s"]["p95"] == pytest.approx(0.010 + 0.9 * 0.020)
    # Live on r1 (label Yes) and r2 (No): r3 has no challenger answer, so neither counts it.
    champion, challenger = c["live"]["champion"], c["live"]["challenger"]
    assert champion["labelled_rows"] == challenger["labelled_rows"] == 2
    assert champion["brier"] == pytest.approx(((1 - 0.8) ** 2 + 0.2 ** 2) / 2)
    assert challenger["brier"] == pytest.approx(((1 - 0.6) ** 2 + 0.1 ** 2) / 2)
    assert champion["roc_auc"] == challenger["roc_auc"] == 1.0


def test_outside_the_window_nothing_is_compared(log_folder: Path,
                                                feedback_folder: Path) -> None:
    later = NOW + timedelta(hours=2)
    assert shadow_report(log_folder, feedback_folder, BINARY, later, 60)["challengers"] == {}


def test_agreement_counts_classes_and_distances_of_probabilities() -> None:
    champion = [{"prediction": "Yes", "probability": 0.7}, {"prediction": "No", "probability": 0.4}]
    challenger = [{"prediction": "Yes", "probability": 0.5},
                  {"prediction": "Yes", "probability": None}]
    agreeing, distances = agreement(champion, challenger)
    assert agreeing == 1
    np.testing.assert_allclose(distances, [0.2])


def test_live_comparison_without_labels_has_no_rows_for_every_task() -> None:
    from flywheel.monitoring.shadow_report import live_comparison

    rows = pd.DataFrame({"record": [0], "request_id": ["a"], "prediction_challenger": ["x"],
                         "prediction_champion": ["x"], "probability_challenger": [0.5],
                         "probability_champion": [0.5]})
    for task in (BINARY, Task("multiclass", ("x", "y", "z")), Task("regression")):
        live = live_comparison(rows, None, task)
        assert {v["labelled_rows"] for v in live.values()} == {0}
