"""`flywheel run`'s fast start: what it started is handed out once, and the rest ends with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.registry.loadcheck import start_checker
from pipelines import fast_start
from pipelines.ahead import start_ahead


@pytest.fixture(autouse=True)
def no_temporary_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the processes; the server is tested in test_prefect_server."""
    monkeypatch.setattr(fast_start, "start_server", lambda: None)


def test_the_checker_and_the_ahead_step_are_taken_once_and_leftovers_end(
    tmp_path: Path,
) -> None:
    with fast_start.fast_start() as head:
        assert fast_start.active() is head  # the flow's one hook
        head.checker = start_checker()
        spec = str(tmp_path / "spec.yaml")
        head.ahead.append(start_ahead("validate", spec))
        checker = head.take_checker()
        assert checker is not None and head.take_checker() is None  # taken once
        left = head.ahead[0].process
        assert head.take_ahead("featurize", spec) is None
    assert fast_start.active() is None
    try:
        assert left.poll() is not None  # ended with the block, not left importing
        assert checker.poll() is None  # promote's: still waiting for a model URI
    finally:
        checker.kill()
        checker.communicate()


def test_a_dead_checker_is_not_handed_out() -> None:
    with fast_start.fast_start() as head:
        head.checker = start_checker()
        head.checker.kill()
        head.checker.communicate()
        assert head.take_checker() is None  # promote starts a fresh one
