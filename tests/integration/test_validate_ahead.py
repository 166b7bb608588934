"""`flywheel run` validates in a process of its own, started before the flow: the task that
collects it gets the same row, the same log lines and, on bad data, the same error and exit
code as validating in the task; and the process never outlives the run that started it."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from flywheel.errors import ValidationFailed
from pipelines import ahead

pytestmark = pytest.mark.slow
EXIT_WAIT_S = 30


def test_the_collected_row_and_log_lines_are_the_steps(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    started = ahead.start_ahead("validate", None)
    with caplog.at_level(logging.INFO):
        row = ahead.collect(started)
    assert row is not None and row["step"] == "validate"
    assert row["summary"]["rows"] == 7043
    relayed = [r for r in caplog.records if r.name.startswith("flywheel.")]
    assert any("validated 7043 rows" in r.getMessage() for r in relayed), caplog.text
    result = json.loads((project / "artifacts" / "validate" / "result.json").read_text())
    assert result["success"]


def test_bad_data_is_the_same_error_and_exit_code(project: Path) -> None:
    table = project / "data" / "wa_churn.csv"
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("contract")
    broken = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[column] = "Weekly"  # a level the spec does not know, in every row
        broken.append(",".join(cells))
    table.write_text("\n".join(broken) + "\n")
    started = ahead.start_ahead("validate", None)
    assert started is not None
    with pytest.raises(ValidationFailed) as failed:
        ahead.collect(started)
    assert failed.value.exit_code == ValidationFailed.exit_code
    assert "contract" in str(failed.value) and "md5" in str(failed.value)
    assert table.read_text().splitlines()[1].split(",")[column] == "Weekly"  # left as it came


def test_the_process_ends_when_its_parent_lets_go(project: Path) -> None:
    """A run that dies closes the child's stdin (the kernel does it under kill -9 too)."""
    started = ahead.start_ahead("validate", None)
    assert started is not None and started.process.stdin is not None
    started.process.stdin.close()
    deadline = time.monotonic() + EXIT_WAIT_S
    while started.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert started.process.returncode is not None, "still validating without its parent"
    finally:
        started.process.kill()
        started.process.wait()


def test_what_no_task_took_is_ended(project: Path) -> None:
    leftover = ahead.start_ahead("validate", None)
    ahead.discard(leftover)
    assert leftover.process.poll() is not None
