"""Corrupted tables through the path a user takes: `flywheel step validate` in a process of its
own ends each in one line and exit code 3 (data) or 4 (validation), never a traceback. The
reader's own property tests are in tests/unit/test_hostile_files.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flywheel.errors import DataError, FlywheelError, ValidationFailed
from tests.conftest import make_project, run_cli
from tests.unit.test_hostile_files import valid_csv

CLI_CASES = {  # each is a process of its own (seconds apiece): one read error, one validation
    "random bytes": lambda csv: bytes(range(256)) * 64,
    "truncated mid-row": lambda csv: csv[: len(csv) // 2 + 7],
}


@pytest.mark.slow
def test_cli_validate_ends_each_corrupted_file_in_one_line_with_exit_3_or_4(tmp_path: Path) -> None:
    """The path a user takes: `flywheel step validate` in a process of its own, per file."""
    root = make_project(tmp_path / "project")
    spec = yaml.safe_load((root / "specs" / "wa_churn.yaml").read_text())
    spec["path"] = "incoming/table.csv"
    (root / "specs" / "incoming.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (root / "incoming").mkdir()
    csv = valid_csv()
    codes = {}
    for name, make in CLI_CASES.items():
        (root / "incoming" / "table.csv").write_bytes(make(csv))
        done = run_cli(root, "step", "validate", "--spec", "specs/incoming.yaml")
        codes[name] = done.returncode
        assert "Traceback" not in done.stderr + done.stdout, (name, done.stderr[-2000:])
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (name, done.stderr)
    assert set(codes.values()) <= {DataError.exit_code, ValidationFailed.exit_code}, codes
    assert issubclass(ValidationFailed, FlywheelError)
