"""A step started by an external torchrun: which rank it is, and that only rank 0 writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.training.launcher import LaunchedRank, launched_rank, rank_outputs

LAUNCHER = {"MASTER_ADDR": "node-0", "MASTER_PORT": "29500", "WORLD_SIZE": "4"}


def as_rank(monkeypatch: pytest.MonkeyPatch, rank: int, local_rank: int = 0) -> None:
    for name, value in LAUNCHER.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))


def test_no_launcher_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert launched_rank() is None
    as_rank(monkeypatch, 0)
    monkeypatch.setenv("WORLD_SIZE", "1")  # a launcher with one process: nothing to share
    assert launched_rank() is None


def test_the_launcher_environment_names_the_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    as_rank(monkeypatch, 3, local_rank=1)
    assert launched_rank() == LaunchedRank(rank=3, world_size=4, local_rank=1)


def test_only_rank_0_writes_the_outputs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "artifacts" / "train"
    as_rank(monkeypatch, 1, local_rank=1)
    with rank_outputs(target) as out:
        (out / "model.pkl").write_text("rank 1")
    assert not target.exists() and not out.exists()

    as_rank(monkeypatch, 0)
    with rank_outputs(target) as out:
        (out / "model.pkl").write_text("rank 0")
    assert (target / "model.pkl").read_text() == "rank 0"
