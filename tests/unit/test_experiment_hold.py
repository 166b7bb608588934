"""Under `dvc exp run` a version that passes the gate is registered, not made champion."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import load_params
from flywheel.registry.gate import Verdict
from flywheel.registry.promote import _experiment_holds
from flywheel.settings import settings

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
PASSED = Verdict(True, "beats the champion")


def test_dvc_sets_the_experiment_name_that_settings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert settings().dvc_experiment is None
    monkeypatch.setenv("DVC_EXP_NAME", "curly-moat")
    assert settings().dvc_experiment == "curly-moat"


def test_an_experiment_only_registers_unless_params_say_promote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "curly-moat")
    assert PARAMS.promote.experiments == "register_only"
    held = _experiment_holds(PASSED, PARAMS, settings())
    assert not held.promote and "curly-moat" in held.reason and "flywheel promote" in held.reason

    promote = PARAMS.model_copy(
        update={"promote": PARAMS.promote.model_copy(update={"experiments": "promote"})}
    )
    assert _experiment_holds(PASSED, promote, settings()) is PASSED


def test_outside_an_experiment_the_verdict_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert _experiment_holds(PASSED, PARAMS, settings()) is PASSED
