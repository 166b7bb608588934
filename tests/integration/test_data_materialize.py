"""The default data on a fresh clone: pulled from the DVC remote, or rebuilt and verified;
data already on disk is never replaced."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flywheel.data.materialize import DEFAULT_TABLE, ensure_raw_data
from flywheel.data.snapshot import restore
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


def test_new_data_on_disk_is_used_as_it_is_never_replaced(project: Path) -> None:
    table, dvc_file = project / DEFAULT_TABLE, project / "data.dvc"
    arrived = table.read_bytes()[: len(table.read_bytes()) // 2]
    table.write_bytes(arrived)
    versioned = dvc_file.read_text()
    assert ensure_raw_data(project) == "changed"
    assert table.read_bytes() == arrived and dvc_file.read_text() == versioned


def test_an_empty_data_folder_is_filled(clone: Path) -> None:
    (clone / "data").mkdir()
    assert ensure_raw_data(clone) == "materialized"


def test_restoring_data_that_exists_nowhere_leaves_everything_as_it_was(project: Path) -> None:
    table, dvc_file = project / DEFAULT_TABLE, project / "data.dvc"
    before_table, before_dvc = table.read_bytes(), dvc_file.read_text()
    missing = "outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  hash: md5\n  path: data\n"
    with pytest.raises(DataError, match="neither in the DVC cache nor on the remote"):
        restore(project, missing)
    assert table.read_bytes() == before_table and dvc_file.read_text() == before_dvc
