"""Cheap checks of the hardening pieces that need no process: the one-line validation error,
request limits, retention and "when trained". Their paths through the CLI, git and the project
lock are in tests/integration/test_hardening_cli.py."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

# --- the validation error is one line --------------------------------------------------------


def test_a_failed_validation_report_headline_is_one_line() -> None:
    from flywheel.validation.report import Failure, ValidationReport

    report = ValidationReport(
        success=False,
        failures=[
            Failure("tenure", "expect_column_values_to_be_between", "12 values\nbelow 0"),
            Failure("contract", "expect_column_values_to_be_in_set", "Weekly"),
            Failure(None, "expect_table_row_count_to_be_between", "3 rows"),
        ],
        statistics={},
        suite_name="wa_churn",
    )
    line = report.headline()
    assert "\n" not in line and line.startswith("3 failed check(s); tenure:")
    assert "also on <table>, contract" in line


# --- request limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (json.dumps([{"a": "[[[[", "b": 1}] * 100), False),
        (json.dumps({"a": [[[["x"]]]]}), False),
        (b"[" * 50_000 + b"]" * 50_000, True),
        (b"[" * 50_000, True),
        (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, True),
        # strings holding brackets cannot make a deep body look shallow
        (('["]",' * 40 + '"["' + ',"["]' * 40).encode(), True),
    ],
)
def test_depth_check(body: bytes | str, deep: bool) -> None:
    from flywheel.serving.limits import TooDeep, check_depth

    data = body.encode() if isinstance(body, str) else body
    if deep:
        with pytest.raises(TooDeep):
            check_depth(data, 32)
    else:
        check_depth(data, 32)


def test_retention_removes_old_then_oldest_files_and_nothing_else(tmp_path: Path) -> None:
    from flywheel.serving.privacy import enforce_retention

    now = time.time()
    for name, size, age in (
        ("inference-a.parquet", 100, 40),
        ("inference-b.parquet", 600, 3),
        ("inference-c.parquet", 600, 2),
        ("inference-d.parquet", 600, 1),
        ("other.parquet", 5000, 90),
    ):
        (tmp_path / name).write_bytes(b"x" * size)
        os.utime(tmp_path / name, (now - age * 86400,) * 2)
    removed = enforce_retention(tmp_path, max_age_s=30 * 86400, max_bytes=1300)
    assert [p.name for p in removed] == ["inference-a.parquet", "inference-b.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "inference-c.parquet",
        "inference-d.parquet",
        "other.parquet",
    ]


# --- "when trained" --------------------------------------------------------------------------


def test_trained_at_comes_from_training_not_from_registration() -> None:
    from types import SimpleNamespace

    from flywheel.registry.status import describe_version

    registered_ms = 1_800_000_000_000  # a day after training
    run = SimpleNamespace(
        data=SimpleNamespace(metrics={}), info=SimpleNamespace(start_time=registered_ms - 3_600_000)
    )
    client = SimpleNamespace(get_run=lambda run_id: run)
    tagged = SimpleNamespace(
        name="m",
        version=3,
        run_id="r",
        creation_timestamp=registered_ms,
        tags={"flywheel.trained_at": "2026-01-02T03:04:05+00:00"},
    )
    assert describe_version(client, tagged)["trained_at"] == "2026-01-02T03:04:05+00:00"
    untagged = SimpleNamespace(**{**vars(tagged), "tags": {}})
    assert describe_version(client, untagged)["trained_at"] == "2027-01-15T07:00:00+00:00"
