"""Each model its own log folders; old-layout files adopted; unrolled rows read on request."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest

from flywheel.errors import ConfigError, DataError
from flywheel.settings import Settings
from tests.unit.test_serving_request_path import a_record, default_spec


def settings_in(tmp: Path) -> Settings:
    return Settings(root=tmp, inference_log_dir=Path("logs/inference"),
                    feedback_dir=Path("logs/feedback"), monitor_dir=Path("logs/monitor"))


@pytest.mark.parametrize("name", ["flywheel-churn", "churn model v2", "a", "A.b_c-1"])
def test_safe_model_names_pass(name: str) -> None:
    from flywheel.identity import checked_model_name

    assert checked_model_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "../up", "a/b", "a\\b", ".hidden", "x.", "x ",
                                  "a\nb", "é", "x" * 201])
def test_names_that_would_leave_or_hide_their_folder_are_a_config_error(name: str) -> None:
    from flywheel.identity import checked_model_name

    with pytest.raises(ConfigError, match="model name") as raised:
        checked_model_name(name)
    assert raised.value.exit_code == 2


def test_each_model_has_its_own_folders_and_the_default_adopts_the_old_layout(
    tmp_path: Path,
) -> None:
    from flywheel.model_logs import model_logs, monitored_models

    current = settings_in(tmp_path)
    old = {
        current.inference_log / "inference-20260101T000000000000-1-00001.parquet": b"log",
        current.feedback / "feedback-1.parquet": b"labels",
        current.monitor / "latest.json": b"{}",
        current.monitor / "retrain.json": b"{}",
    }
    for path, content in old.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (current.monitor / "notes.txt").write_text("the user's own")

    other = model_logs(current, "flywheel-credit", "flywheel-churn")
    assert other.inference == tmp_path / "logs" / "inference" / "flywheel-credit"
    assert all(path.exists() for path in old)  # another model never takes the default's files

    mine = model_logs(current, "flywheel-churn", "flywheel-churn")
    for path, content in old.items():
        kind = path.parent.name
        moved = getattr(mine, kind) / path.name
        assert not path.exists() and moved.read_bytes() == content
    assert (current.monitor / "notes.txt").exists()  # not a file of the old layout
    assert model_logs(current, "flywheel-churn", "flywheel-churn") == mine  # once is enough
    assert monitored_models(current) == [("flywheel-churn", mine.monitor)]

    with pytest.raises(ConfigError):
        model_logs(current, "../flywheel-churn", "flywheel-churn")


def _log_file(folder: Path, name: str, columns: dict[str, list[object]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(next(iter(columns.values())))
    table = pa.table({
        "request_id": [f"{name}{i}" for i in range(n)],
        "time": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
        "model_version": ["1"] * n,
        **columns,
    })
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"{name}.parquet")


def test_files_of_two_column_sets_are_read_together_and_clashing_types_are_one_line(
    tmp_path: Path,
) -> None:
    from flywheel.monitoring.logread import read_log

    _log_file(tmp_path / "ok", "a", {"tenure": [1.0, 2.0], "contract": ["x", "y"]})
    _log_file(tmp_path / "ok", "b", {"tenure": ["long"], "balance": [3.0]})  # a hot-swap
    table = read_log(tmp_path / "ok", ["balance"], version="1")  # the newest file's columns
    assert table.column("balance").to_pylist() == [None, None, 3.0]

    _log_file(tmp_path / "clash", "a", {"tenure": ["long"]})  # text where numbers are now
    _log_file(tmp_path / "clash", "b", {"tenure": [1.0]})
    with pytest.raises(DataError, match="disagree on column types"):
        read_log(tmp_path / "clash", ["tenure"], version="1")


def test_a_label_for_a_request_not_rolled_yet_is_accepted(tmp_path: Path) -> None:
    """The writer rolls once an hour here; asking through the folder gets the row written."""
    from flywheel.data.task import task_of
    from flywheel.monitoring.feedback import ACCEPTED, UNKNOWN_REQUEST, RequestIndex, check_fresh
    from flywheel.serving.inference_log import InferenceLog, LogEntry

    spec = default_spec()
    folder = tmp_path / "not-yet"  # nothing rolled yet: the writer has not even made it
    log = InferenceLog(folder, spec, roll_rows=1_000, roll_seconds=3600, queue_size=10)
    answer = {"prediction": "Yes", "probability": 0.9, "model_version": "1"}
    log.submit(LogEntry("just-now", datetime.now(UTC), orjson.dumps([a_record(spec)]),
                        orjson.dumps([answer])))
    log.start()
    try:
        labels = pd.DataFrame({"request_id": ["just-now", "never"], "label": ["Yes", "No"]})
        parts = check_fresh(labels, task_of(spec), RequestIndex(folder), wait_s=30)
    finally:
        log.close()
    assert parts[ACCEPTED]["request_id"].tolist() == ["just-now"]
    assert parts[UNKNOWN_REQUEST]["request_id"].tolist() == ["never"]
