"""Training rows from labelled traffic, each rule with a hand-worked case."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flywheel.data.spec import DatasetSpec
from flywheel.monitoring.gauges import GaugeSet
from flywheel.monitoring.retrain_status import add_status, write_status
from flywheel.monitoring.traffic_rows import (
    known_request_ids,
    labelled_new_records,
    ledger_path,
    like,
    new_traffic_rows,
    personal_features,
    summary_line,
)
from flywheel.steps.refresh import Refresh, _idle_line, _outcome
from flywheel.steps.summary import run_summary_markdown


def spec(**extra: object) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "t",
            "path": "data/t.csv",
            "target": "churn",
            "classes": ["No", "Yes"],
            "positive_class": "Yes",
            "id_columns": ["rownames"],
            "features": [
                {"name": "tenure", "kind": "numeric"},
                {"name": "charges", "kind": "numeric"},
                {"name": "contract", "kind": "categorical", "categories": ["M", "Y"]},
            ],
            **extra,
        }
    )


TABLE = pd.DataFrame(
    {
        "rownames": [1, 2, 7],
        "churn": ["No", "Yes", "No"],
        "tenure": [3, 10, 1],
        "charges": [20.5, 30.0, 12.25],
        "contract": ["M", "Y", "M"],
        "note": ["a", "b", "c"],  # a column the spec does not know
    }
)
T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def logged() -> pd.DataFrame:
    """r1..r3 single-record requests, b1 a two-record batch; r3 answered first."""
    return pd.DataFrame(
        {
            "request_id": ["r1", "r2", "b1", "b1", "r3"],
            "time": [T0 + pd.Timedelta(seconds=s) for s in (10, 20, 30, 30, 5)],
            "model_version": ["1", "1", "1", "1", "2"],
            "tenure": [4.0, 5.0, 6.0, 7.0, 8.0],
            "charges": [40.0, 50.5, 60.0, 70.0, 80.0],
            "contract": pd.Categorical(["Y", "M", "M", "Y", "M"]),
        }
    )


def labels() -> pd.DataFrame:
    # r2 has no label; b1 is a batch; r1's label was corrected (the latest one counts).
    return pd.DataFrame(
        {"request_id": ["r1", "b1", "r3", "r1"], "label": ["No", "Yes", "Yes", "Yes"]}
    )


def test_join_keeps_labelled_single_record_requests_not_yet_appended_oldest_first() -> None:
    records, left_out = labelled_new_records(logged(), labels(), known=set())
    assert records["request_id"].tolist() == ["r3", "r1"]  # by time: r3 at 5 s, r1 at 10 s
    assert records["label"].tolist() == ["Yes", "Yes"]  # r1: the later label
    # 3 single-record requests, 2 labelled (r2 is not); 1 batch request (2 records)
    assert left_out == {"batch_requests": 1, "already_in_table": 0}
    again, left_out = labelled_new_records(logged(), labels(), known={"r3"})
    assert again["request_id"].tolist() == ["r1"]
    assert left_out["already_in_table"] == 1


def test_rows_take_the_tables_columns_types_and_next_ids() -> None:
    found = new_traffic_rows(spec(), TABLE, logged(), labels(), known=set())
    rows = found.rows
    assert list(rows.columns) == list(TABLE.columns)
    assert rows["rownames"].tolist() == [8, 9]  # after the largest id (7), not the count
    assert rows["churn"].tolist() == ["Yes", "Yes"]
    assert rows["tenure"].tolist() == [8, 4] and rows["tenure"].dtype == TABLE["tenure"].dtype
    assert rows["charges"].tolist() == [80.0, 40.0]
    assert rows["contract"].tolist() == ["M", "Y"]
    assert rows["note"].isna().all()
    grown = pd.concat([TABLE, rows], ignore_index=True)
    assert grown["tenure"].dtype == "int64" and len(grown) == 5


def test_provenance_names_requests_times_and_serving_versions() -> None:
    found = new_traffic_rows(spec(), TABLE, logged(), labels(), known=set())
    record = found.provenance
    assert record["rows"] == 2 and record["request_ids"] == ["r3", "r1"]
    assert record["time_from"] == "2026-01-01T00:00:05+00:00"
    assert record["time_to"] == "2026-01-01T00:00:10+00:00"
    assert record["served_by"] == {"1": 1, "2": 1}
    line = summary_line({**record, "file": "data/provenance/traffic-0001.json"})
    assert line.startswith("2 labelled rows from traffic (request ids r3 .. r1, answered ")
    assert "served by v1: 1, v2: 1; data/provenance/traffic-0001.json)" in line


def test_a_text_id_is_the_request_id_and_a_numeric_target_stays_numeric() -> None:
    table = TABLE.assign(rownames=["a", "b", "c"], churn=[0, 1, 0])
    s = spec(classes=["0", "1"], positive_class="1")
    found = new_traffic_rows(s, table, logged(), labels().assign(label=["0", "1", "1", "1"]), set())
    assert found.rows["rownames"].tolist() == ["r3", "r1"]
    assert found.rows["churn"].tolist() == [1, 1] and found.rows["churn"].dtype == "int64"


def test_like_keeps_fractions_and_missing_values() -> None:
    ints = pd.Series([1, 2])
    assert like(pd.Series([1.5, 2.0]), ints).tolist() == [1.5, 2.0]  # not whole: float
    assert like(pd.Series([3.0, None]), ints).isna().tolist() == [False, True]
    assert like(pd.Series([1.0, None]), pd.Series(["x"])).tolist()[0] == "1"


def test_a_time_column_gets_the_request_time() -> None:
    table = TABLE.assign(at=["2025-12-01T00:00:00+00:00"] * 3)
    found = new_traffic_rows(spec(), table, logged(), labels(), set(), time_column="at")
    assert found.rows["at"].tolist()[0] == "2026-01-01T00:00:05+00:00"
    numeric = TABLE.assign(at=[0.0, 1.0, 2.0])
    found = new_traffic_rows(spec(), numeric, logged(), labels(), set(), time_column="at")
    assert found.rows["at"].tolist()[0] == T0.timestamp() + 5


def test_personal_features_refuse_traffic() -> None:
    s = spec()
    assert personal_features(s) == []
    s.features[2].pii = True
    assert personal_features(s) == ["contract"]


def test_the_ledger_knows_what_was_appended(tmp_path: Path) -> None:
    assert known_request_ids(tmp_path) == set()
    first = ledger_path(tmp_path)
    assert first.name == "traffic-0001.json"
    first.parent.mkdir()
    first.write_text(json.dumps({"request_ids": ["r1", "r3"]}))
    assert ledger_path(tmp_path).name == "traffic-0002.json"
    assert known_request_ids(tmp_path) == {"r1", "r3"}


def test_a_run_that_trains_nothing_says_which_data_and_champion() -> None:
    none = Refresh("none", 0, "no new labelled traffic (batch_requests: 3)")
    line = _idle_line("m", "2", "1", none)
    assert line.startswith("no new data since v2: no new labelled traffic (batch_requests: 3); ")
    assert line.endswith("nothing was trained or registered; champion v1 of m keeps serving")
    assert _idle_line("m", None, None, None).startswith("nothing to do: data, code and params")
    assert _outcome(none, ran=False) == "no_new_data"
    assert _outcome(none, ran=True) == "no_new_traffic"
    assert _outcome(Refresh("refused", 0, "x"), ran=False) == "refused"


def test_the_summary_carries_the_note() -> None:
    report = [{"step": "promote", "seconds": 0.0, "summary": {"skipped": "up to date"}}]
    text = run_summary_markdown(report, None, ("no new data since v2: a|b",))
    assert "\n\nno new data since v2: a\\|b\n\n| step |" in text


def test_status_gauges(tmp_path: Path) -> None:
    from prometheus_client.core import GaugeMetricFamily

    status = {
        "outcome": "no_new_data",
        "new_rows": 0,
        "since_version": "2",
        "finished_at": "2026-01-01T00:00:00+00:00",
    }
    write_status(tmp_path, status)
    gauges = GaugeSet(GaugeMetricFamily)
    add_status(gauges, "m", status)
    families = {f.name: f for f in gauges.families()}
    [sample] = families["flywheel_retrain_status"].samples
    assert sample.labels == {"model_name": "m", "outcome": "no_new_data", "since_version": "2"}
    assert sample.value == 1
    assert families["flywheel_retrain_new_rows"].samples[0].value == 0
    assert families["flywheel_retrain_timestamp_seconds"].samples[0].value == T0.timestamp()
    with pytest.raises(ValueError, match="expected one of"):
        write_status(tmp_path, {**status, "outcome": "skipped"})


def test_only_labelled_requests_are_read_off_the_log(tmp_path: Path) -> None:
    from flywheel.monitoring.feedback import store_feedback
    from flywheel.monitoring.traffic_rows import read_traffic

    (tmp_path / "log").mkdir()
    (tmp_path / "feedback").mkdir()
    frame = logged().assign(contract=lambda f: f["contract"].astype(str))
    frame.to_parquet(tmp_path / "log" / "inference-20260101T000000000000-1-00001.parquet")
    assert read_traffic(tmp_path / "log", tmp_path / "feedback", spec()) is None  # no labels
    store_feedback(tmp_path / "feedback", labels().head(3))
    found = read_traffic(tmp_path / "log", tmp_path / "feedback", spec())
    assert found is not None
    log, latest = found
    assert sorted(log["request_id"].astype(str)) == ["b1", "b1", "r1", "r3"]  # not r2
    assert list(log.columns) == [
        "request_id",
        "time",
        "model_version",
        "tenure",
        "charges",
        "contract",
    ]
    assert len(latest) == 3
