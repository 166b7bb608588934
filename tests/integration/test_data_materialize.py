"""The default data on a fresh clone: pulled from the DVC remote, or rebuilt and verified."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flywheel.data.materialize import DEFAULT_TABLE, ensure_raw_data
from flywheel.errors import DataError


@pytest.fixture()
def clone(project: Path) -> Path:
    shutil.rmtree(project / "data", ignore_errors=True)
    shutil.rmtree(project / ".dvc" / "cache", ignore_errors=True)
    return project


def test_fresh_clone_rebuilds_from_the_package_then_pulls_from_the_remote(clone: Path) -> None:
    assert ensure_raw_data(clone) == "materialized"
    assert (clone / DEFAULT_TABLE).stat().st_size > 800_000
    assert any((clone / ".dvc-storage").rglob("*")), "the rebuilt data was pushed to the remote"

    shutil.rmtree(clone / "data")
    shutil.rmtree(clone / ".dvc" / "cache")
    assert ensure_raw_data(clone) == "pulled"
    assert ensure_raw_data(clone) == "present"


def test_hash_mismatch_is_an_error_not_a_silent_re_add(clone: Path) -> None:
    dvc_file = clone / "data.dvc"
    original = dvc_file.read_text()
    dvc_file.write_text(original.replace(original.split("md5: ")[1][:32], "0" * 32))
    with pytest.raises(DataError, match="hash differs from data.dvc"):
        ensure_raw_data(clone)
    assert dvc_file.read_text() != original  # data.dvc was not rewritten to match


def test_not_a_project_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.dvc: not found"):
        ensure_raw_data(tmp_path)
