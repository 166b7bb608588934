"""A regression canary's live MAE against the champion's, by hand (monitoring/canary_mae.py),
read from the inference log and labels (monitoring/canary_live.py), and what the controller
does with it (monitoring/canary_slo.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flywheel.monitoring.canary_live import LiveErrors, live_errors
from flywheel.monitoring.canary_mae import mae_breach, mae_excess, mae_z
from flywheel.monitoring.canary_slo import HOLD, ROLLBACK, Evaluation, next_action
from flywheel.registry.canary import RUNNING, Plan, Progress
from tests.unit.canary_log import write_log

PLAN = Plan(steps=[0.05, 0.25, 0.5, 1.0], step_seconds=60, eval_seconds=10, lease_seconds=30,
            max_error_excess=0.01, max_latency_ratio=1.5, started_at=1000.0, min_records=100,
            min_labelled_rows=200, max_mae_increase=0.05)


def _with(rows: int, mean: float, champion_mean: float, var: float = 1.0) -> LiveErrors:
    """`rows` absolute errors per role with these means and sample variance `var`: the sum of
    squares is (n - 1) var + n mean^2."""
    def sums(m: float) -> tuple[int, float, float]:
        return rows, rows * m, (rows - 1) * var + rows * m * m
    return LiveErrors(*sums(mean), *sums(champion_mean))


def test_mae_z_by_hand() -> None:
    # canary |e| = 1, 2, 3, 4: mean 2.5, variance (30 - 4 x 6.25) / 3 = 5/3; champion 1, 1, 2, 2:
    # mean 1.5, variance (10 - 9) / 3 = 1/3. r = 0.2: D = 2.5 - 1.2 x 1.5 = 0.7, spread
    # sqrt(5/3 / 4 + 1.44 x 1/3 / 4) = sqrt(0.536667) = 0.732575, z = 0.955533
    live = LiveErrors(4, 10.0, 30.0, 4, 6.0, 10.0)
    assert mae_z(live, 0.2) == pytest.approx(0.7 / (5 / 12 + 0.12) ** 0.5)
    assert mae_z(live, 0.2) == pytest.approx(0.955533, abs=1e-6)


def test_a_significantly_worse_mae_rolls_back() -> None:
    # means 1.5 and 1.0 on 400 each, variance 1: D = 1.5 - 1.05 = 0.45, spread
    # sqrt(1/400 + 1.1025/400) = 0.0725, z = 6.21
    worse = _with(400, 1.5, 1.0)
    assert mae_z(worse, 0.05) == pytest.approx(0.45 / (2.1025 / 400) ** 0.5)
    reason = mae_breach(worse, 0.05, 200)
    assert reason is not None and "live MAE 1.5 on 400" in reason and "max_mae_increase" in reason
    assert mae_breach(worse, 0.05, 401) is None  # too few labels: no verdict
    assert mae_breach(None, 0.05, 1) is None
    action, why = next_action(_at(0), _seen(worse), now=1100.0)
    assert action == ROLLBACK and "max_mae_increase" in why


def test_a_chance_excess_holds_the_step_and_the_bound_itself_passes() -> None:
    # 1.08 against 1.0 x 1.05: D = 0.03, z = 0.03 / 0.0725 = 0.41: no rollback, but it holds
    noisy = _with(400, 1.08, 1.0)
    assert mae_breach(noisy, 0.05, 200) is None
    reason = mae_excess(noisy, 0.05, 200)
    assert reason is not None and "not significant yet" in reason
    assert next_action(_at(0), _seen(noisy), now=1100.0)[0] == HOLD
    assert mae_excess(_with(400, 1.05, 1.0), 0.05, 200) is None  # exactly 1.05 x: kept
    assert next_action(_at(0), _seen(_with(400, 1.0, 1.0)), now=1100.0)[0] == "advance"


def test_identical_errors_have_no_spread_and_decide_by_the_sign() -> None:
    same = LiveErrors(2, 2.0, 2.0, 2, 1.0, 0.5)  # |e| 1, 1 against 0.5, 0.5
    assert mae_z(same, 0.05) == float("inf")
    assert mae_z(LiveErrors(2, 1.0, 0.5, 2, 1.0, 0.5), 0.05) == float("-inf")


def test_live_errors_reads_absolute_errors_per_role_from_the_log(tmp_path: Path) -> None:
    rows = [("c1", "champion", "1", 10.0), ("c1", "champion", "1", 99.0),  # first record counts
            ("c2", "champion", "1", 5.0), ("k1", "canary", "2", 7.0), ("k2", "canary", "2", 1.0),
            ("o1", "canary", "9", 3.0)]
    log, feedback = write_log(tmp_path, rows, {"c1": "12", "c2": "5", "k1": "4",
                                               "k2": "not a number", "o1": "0"})
    since = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    # champion |10 - 12| = 2, |5 - 5| = 0; canary version 2: |7 - 4| = 3 (k2's label is no number)
    assert live_errors(log, feedback, "2", since) == LiveErrors(1, 3.0, 9.0, 2, 2.0, 4.0)
    assert live_errors(log, tmp_path / "none", "2", since) is None


def _at(step: int) -> Progress:
    return Progress("2", replace(PLAN), step, PLAN.steps[step], 1000.0, 1030.0, RUNNING)


def _seen(live: LiveErrors) -> Evaluation:
    """A canary with 120 good records and calls, and `live` errors."""
    return Evaluation(120, 0, 2000, 0, 1.0, live, 0.004, ((0.005, 120), (float("inf"), 120)))
