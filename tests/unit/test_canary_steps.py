"""The canary's decisions, by hand: which bound breaks, when a step passes, what the lease
routes, and which key a request is routed by. Pure functions; the end-to-end run on real
processes is tests/integration/serving/test_canary.py."""

from __future__ import annotations

import pytest

from flywheel.config import CanaryParams
from flywheel.monitoring.canary_slo import (
    ADVANCE,
    HOLD,
    PROMOTE,
    ROLLBACK,
    Evaluation,
    breach,
    next_action,
)
from flywheel.registry.canary import RUNNING, STOPPED, Plan, Progress, advanced, renewed, status
from flywheel.serving.canary import route_key

PLAN = Plan(steps=[0.05, 0.25, 0.5, 1.0], step_seconds=60, eval_seconds=10, lease_seconds=30,
            max_error_excess=0.01, max_latency_ratio=1.5, started_at=1000.0)
GOOD = Evaluation(canary_records_per_s=2.0, error_excess=0.0, latency_ratio=1.1)


def _at(step: int, started: float = 1000.0, lease: float = 1030.0,
        state: str = RUNNING) -> Progress:
    return Progress("2", PLAN, step, PLAN.steps[step], started, lease, state)


def test_breach_names_the_bound_it_broke() -> None:
    assert breach(GOOD, PLAN) is None
    assert breach(Evaluation(2.0, 0.01, 1.5), PLAN) is None  # at the bounds: kept
    errors = breach(Evaluation(2.0, 0.0101, 1.0), PLAN)
    assert errors is not None and "0.0101" in errors and "max_error_excess" in errors
    slow = breach(Evaluation(2.0, 0.0, 1.51), PLAN)
    assert slow is not None and "1.51x" in slow and "max_latency_ratio" in slow


def test_a_breach_rolls_back_at_once_whatever_the_step() -> None:
    bad = Evaluation(2.0, 0.5, 1.0)
    for step in range(3):
        assert next_action(_at(step), bad, now=1001.0)[0] == ROLLBACK


def test_a_step_holds_until_it_lasted_step_seconds_with_every_figure() -> None:
    assert next_action(_at(0), GOOD, now=1059.0)[0] == HOLD
    assert next_action(_at(0), GOOD, now=1060.0)[0] == ADVANCE
    no_traffic = Evaluation(None, None, None)
    assert next_action(_at(0), no_traffic, now=5000.0)[0] == HOLD
    no_latency = Evaluation(2.0, 0.0, None)
    assert next_action(_at(0), no_latency, now=5000.0)[0] == HOLD


def test_passing_the_step_before_the_last_promotes() -> None:
    assert next_action(_at(1), GOOD, now=1060.0)[0] == ADVANCE
    assert next_action(_at(2), GOOD, now=1060.0)[0] == PROMOTE


def test_the_lease_decides_what_is_routed() -> None:
    progress = _at(1, lease=1030.0)
    assert progress.routed_share(1029.9) == 0.25
    assert progress.routed_share(1030.0) == 0.0  # lapsed: the champion takes everything
    assert _at(1, state=STOPPED).routed_share(1000.0) == 0.0
    assert renewed(progress, now=2000.0).lease_until == 2030.0
    moved = advanced(progress, now=2000.0)
    assert (moved.step, moved.share, moved.step_started, moved.lease_until) == (
        2, 0.5, 2000.0, 2030.0)
    shown = status(moved, now=2010.0)
    assert (shown["step"], shown["lease_left_s"], shown["step_left_s"]) == (3, 20.0, 50.0)
    assert status(None) == {"state": "none"}


def test_requests_are_routed_by_id_or_by_the_entity_of_their_first_record() -> None:
    assert route_key("abc", [{"customer": 7}], "request_id") == "abc"
    assert route_key("abc", [{"customer": 7}, {"customer": 8}], "customer") == "customer=7"
    assert route_key("abc", {"customer": 7}, "customer") == "customer=7"
    assert route_key("abc", [{"other": 1}], "customer") == "abc"  # no such column: the id
    assert route_key("abc", object(), "customer") == "abc"  # not decoded by the gate


@pytest.mark.parametrize("steps", [[0.5], [0.5, 0.25, 1.0], [0.1, 0.9], [0.0, 1.0]])
def test_steps_must_rise_to_one(steps: list[float]) -> None:
    fields = dict(step_seconds=1, eval_seconds=1, lease_seconds=1, route_by="request_id",
                  max_error_excess=0.01, max_latency_ratio=1.5, prometheus_url="http://x")
    with pytest.raises(ValueError, match="steps"):
        CanaryParams(steps=steps, **fields)
