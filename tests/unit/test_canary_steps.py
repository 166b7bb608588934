"""The canary's decisions, by hand: which bound breaks (errors and slow calls by exact binomial
tests on few records, the step's p95 ratio, live accuracy), when a step passes, what the lease
routes, and which key a request is routed by. Pure functions; the end-to-end run on real
processes is tests/integration/serving/test_canary.py."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from flywheel.config import CanaryParams
from flywheel.monitoring.canary_errors import (
    binomial_tail,
    error_breach,
    error_excess,
    upper_limit,
)
from flywheel.monitoring.canary_latency import latency_breach, slow_calls
from flywheel.monitoring.canary_live import (
    LiveAccuracy,
    LiveErrors,
    drop_z,
    live_accuracy,
    metric_breach,
    metric_excess,
)
from flywheel.monitoring.canary_slo import (
    ADVANCE,
    CALL_BUCKETS,
    CALL_P95,
    CANARY_COUNT,
    CANARY_SELECTOR,
    CHAMPION_SELECTOR,
    HOLD,
    PROMOTE,
    ROLLBACK,
    Evaluation,
    breach,
    next_action,
)
from flywheel.registry.canary import RUNNING, STOPPED, Plan, Progress, advanced, renewed, status
from flywheel.serving.canary import route_key
from tests.conftest import REPO
from tests.unit.canary_log import AT, write_log

PLAN = Plan(steps=[0.05, 0.25, 0.5, 1.0], step_seconds=60, eval_seconds=10, lease_seconds=30,
            max_error_excess=0.01, max_latency_ratio=1.5, started_at=1000.0, min_records=100,
            max_metric_drop=0.02, min_labelled_rows=50)
CHAMPION_P95 = 0.004  # x 1.5 = 0.006: a canary call is slow past the bound 0.01 of _calls


def _calls(calls: int, slow: int = 0) -> tuple[tuple[float, int], ...]:
    """Cumulative call-time buckets: `slow` of `calls` past 0.01 s, the rest within 0.005 s."""
    return ((0.005, calls - slow), (0.01, calls - slow), (math.inf, calls))


GOOD = Evaluation(canary_records=120, canary_errors=0, champion_records=2000,
                  champion_errors=0, latency_ratio=1.1, champion_p95=CHAMPION_P95,
                  canary_buckets=_calls(120, 2))


def _seen(records: int, errors: int = 0, ratio: float | None = 1.0,
          live: LiveAccuracy | None = None, slow: int = 0,
          calls: int | None = None) -> Evaluation:
    """A canary's counts over the step (one timed call a record that did not fail, unless
    `calls` says) beside a champion with 1000 records, no errors and a p95 of 4 ms."""
    calls = records - errors if calls is None else calls
    return Evaluation(records, errors, 1000, 0, ratio, live, CHAMPION_P95, _calls(calls, slow))


def _at(step: int, started: float = 1000.0, lease: float = 1030.0,
        state: str = RUNNING) -> Progress:
    return Progress("2", PLAN, step, PLAN.steps[step], started, lease, state)


def test_binomial_tail_by_hand() -> None:
    assert binomial_tail(1, 5, 0.01) == pytest.approx(1 - 0.99**5)  # 0.04901
    assert binomial_tail(1, 20, 0.01) == pytest.approx(1 - 0.99**20)  # 0.18209
    # P(X >= 2 | 20, 0.01) = 1 - 0.99^20 - 20 * 0.01 * 0.99^19 = 0.016859
    assert binomial_tail(2, 20, 0.01) == pytest.approx(0.016859, abs=1e-6)
    # P(X >= 3 | 100, 0.005) = 1 - 0.995^100 - 100*0.005*0.995^99 - 4950*0.005^2*0.995^98
    by_hand = 1 - 0.995**100 - 0.5 * 0.995**99 - 4950 * 0.005**2 * 0.995**98
    assert binomial_tail(3, 100, 0.005) == pytest.approx(by_hand)
    assert math.isclose(by_hand, 0.014103, abs_tol=1e-6)  # 1 - 0.60577 - 0.30441 - 0.07572
    assert binomial_tail(0, 10, 0.3) == 1.0 and binomial_tail(11, 10, 0.3) == 0.0
    assert binomial_tail(1, 10, 0.0) == 0.0  # no errors allowed: any error is significant
    assert binomial_tail(10, 10, 0.01) == pytest.approx(1e-20)  # every call failed: 0.01^10
    # both branches agree where they meet: P(X >= 1 | 100, 0.01) = 1 - 0.99^100 = 0.633968
    assert binomial_tail(1, 100, 0.01) == pytest.approx(1 - 0.99**100)
    assert binomial_tail(2, 100, 0.01) == pytest.approx(1 - 0.99**100 - 0.99**99)


def test_the_champion_ratio_is_taken_at_its_upper_confidence_limit() -> None:
    # no errors in M records: P(X <= 0 | M, p) = (1 - p)^M = level, p = 1 - level^(1/M)
    assert upper_limit(0, 1000, 0.005) == pytest.approx(1 - 0.005 ** (1 / 1000))  # 0.005284
    # 1 error in 2: P(X <= 1 | 2, p) = 1 - p^2 = level, p = sqrt(1 - level)
    assert upper_limit(1, 2, 0.005) == pytest.approx(0.995**0.5)
    assert upper_limit(3, 3, 0.005) == 1.0


# the champion of _seen: 0 errors in 1000 records, U = 0.005284; with the bound 0.01, the canary
# is tested against b = 0.015284 at ALPHA / 2 = 0.005
B = 1 - 0.005 ** (1 / 1000) + 0.01


def test_errors_on_a_handful_of_records_roll_back_only_when_significant() -> None:
    # 1 error in 1 is p = b = 0.0153 and holds; 2 in 2 is b^2 = 0.00023 and rolls back
    assert error_breach(1, 1, 0, 1000, 0.01) is None
    assert binomial_tail(2, 2, B) == pytest.approx(B**2)
    assert error_breach(2, 2, 0, 1000, 0.01) is not None
    # 1 in 5: 1 - (1 - b)^5 = 0.0741, holds
    assert binomial_tail(1, 5, B) == pytest.approx(1 - (1 - B) ** 5)
    assert error_breach(1, 5, 0, 1000, 0.01) is None
    # 2 in 20: 1 - (1 - b)^20 - 20 b (1 - b)^19 = 0.0370, holds; 3 in 20: 0.00335, rolls back
    assert binomial_tail(2, 20, B) == pytest.approx(1 - (1 - B) ** 20 - 20 * B * (1 - B) ** 19)
    assert error_breach(2, 20, 0, 1000, 0.01) is None
    assert binomial_tail(3, 20, B) == pytest.approx(
        1 - (1 - B) ** 20 - 20 * B * (1 - B) ** 19 - 190 * B**2 * (1 - B) ** 18)
    assert error_breach(3, 20, 0, 1000, 0.01) is not None
    # the champion's own errors raise the bound: 40 of 1000 (U = 0.0564) + 0.01
    assert error_breach(3, 20, 40, 1000, 0.01) is None
    assert error_breach(0, 1000, 0, 1000, 0.01) is None
    # a champion with no records over the step: nothing to compare with, no verdict
    assert error_breach(5, 5, 0, 0, 0.01) is None


def test_a_noisy_champion_ratio_does_not_roll_a_good_canary_back() -> None:
    # at a 50% step both have 100 records; the champion's 0 errors in 100 is no proof its true
    # ratio is 0: U = 1 - 0.005^(1/100) = 0.0516, and 3 canary errors in 100 hold
    assert upper_limit(0, 100, 0.005) == pytest.approx(1 - 0.005 ** (1 / 100))
    assert error_breach(3, 100, 0, 100, 0.005) is None
    # taken as exactly 0, the bound 0.005 would have made it p = 0.014, 4 errors p = 0.0017
    assert binomial_tail(4, 100, 0.005) < 0.005
    assert error_breach(4, 100, 0, 100, 0.005) is None


def test_an_observed_excess_over_the_bound_holds_the_step_but_never_rolls_back() -> None:
    # 2 errors in 100 against 0 of 1000 and the bound 0.01: not significant (tail at b:
    # 0.45), so no rollback; but the observed excess 0.02 > 0.01 keeps the step from passing
    assert error_breach(2, 100, 0, 1000, 0.01) is None
    reason = error_excess(2, 100, 0, 1000, 0.01)
    assert reason is not None and "excess 0.0200" in reason and "2 of 100" in reason
    assert error_excess(1, 100, 0, 1000, 0.01) is None  # excess 0.01: at the bound, kept
    assert error_excess(3, 100, 20, 1000, 0.01) is None  # 0.03 - 0.02: at the bound
    assert error_excess(0, 0, 0, 1000, 0.01) is None
    action, why = next_action(_at(0), _seen(100, 2, calls=100), now=1060.0)
    assert action == HOLD and "excess 0.0200" in why
    assert next_action(_at(0), _seen(200, 2, calls=200), now=1060.0)[0] == ADVANCE  # 0.01


def test_breach_names_the_bound_it_broke() -> None:
    assert breach(GOOD, PLAN) is None
    assert breach(_seen(100, 1, 1.5), PLAN) is None  # at the bounds: kept
    errors = breach(_seen(5, 2), PLAN)  # P(X >= 2 | 5, 0.0153) = 0.0023
    assert errors is not None and "2 of 5" in errors and "max_error_excess" in errors
    slow = breach(_seen(10, slow=4), PLAN)
    assert slow is not None and "4 of 10" in slow and "max_latency_ratio" in slow
    assert "0.01 s" in slow  # the first bucket bound at or past 1.5 x 0.004


def test_slow_calls_are_counted_past_the_first_bucket_bound_at_the_threshold() -> None:
    buckets = ((0.005, 90), (0.006, 95), (0.0072, 97), (math.inf, 100))
    assert slow_calls(buckets, 0.0055) == (5, 100, 0.006)  # rounded up to 0.006
    assert slow_calls(buckets, 0.0072) == (3, 100, 0.0072)  # a bound equal to it counts
    assert slow_calls(buckets, 1.0) == (0, 100, math.inf)  # past every finite bound
    assert slow_calls((), 0.001) == (0, 0, math.inf)


def test_slow_calls_roll_back_only_when_significantly_over_five_percent() -> None:
    # P(X >= k | X ~ Binomial(n, 0.05)) <= 0.01, by hand:
    # 1 of 1: 0.05 (a first slow call alone is not a slow canary); 2 of 2: 0.0025
    assert latency_breach(_calls(1, 1), CHAMPION_P95, 1.5) is None
    assert latency_breach(_calls(2, 2), CHAMPION_P95, 1.5) is not None
    # 10 calls: P(X >= 3) = 1 - 0.95^10 - 10*0.05*0.95^9 - 45*0.05^2*0.95^8 = 0.011504 > 0.01
    # and P(X >= 4) = 0.011504 - 120*0.05^3*0.95^7 = 0.001028 <= 0.01
    by_hand = 1 - 0.95**10 - 0.5 * 0.95**9 - 45 * 0.0025 * 0.95**8
    assert math.isclose(by_hand, 0.011504, abs_tol=1e-6)
    assert binomial_tail(3, 10, 0.05) == pytest.approx(by_hand)
    assert latency_breach(_calls(10, 3), CHAMPION_P95, 1.5) is None
    reason = latency_breach(_calls(10, 4), CHAMPION_P95, 1.5)
    assert reason is not None and "p = 0.001" in reason
    # a looser bound, 3 x 0.004 = 0.012, is past these buckets' last finite bound: none counted
    assert latency_breach(_calls(10, 4), CHAMPION_P95, 3.0) is None
    assert latency_breach(_calls(10, 10), None, 1.5) is None  # no champion calls to compare


def test_a_slow_canary_rolls_back_on_evidence_before_min_records() -> None:
    action, reason = next_action(_at(0), _seen(10, slow=4), now=1001.0)
    assert action == ROLLBACK and "max_latency_ratio" in reason
    # a p95 ratio of a few calls is no evidence: only the step's verdict judges it
    assert next_action(_at(0), _seen(3, 0, 5.0), now=1001.0)[0] == HOLD
    assert next_action(_at(0), _seen(3, 0, 5.0), now=5000.0)[0] == HOLD  # 3 of 100 records


def test_an_evaluation_with_timed_canary_calls_saw_canary_traffic() -> None:
    """The controller counts evaluations from the first with canary traffic; timed calls are
    traffic even when the records counter's increase has not reached Prometheus yet."""
    assert _seen(0, calls=6).has_traffic and _seen(6, calls=0).has_traffic
    assert not _seen(0).has_traffic


def test_the_step_holds_its_p95_ratio_to_the_bound_when_it_would_pass() -> None:
    action, reason = next_action(_at(0), _seen(100, 0, 1.51), now=1060.0)
    assert action == ROLLBACK and "1.51x" in reason and "100 canary calls" in reason
    assert next_action(_at(0), _seen(100, 0, 1.51), now=1059.0)[0] == HOLD  # not judged yet
    assert next_action(_at(0), _seen(100, 0, 1.5), now=1060.0)[0] == ADVANCE  # at the bound


def test_live_accuracy_drop_z_by_hand() -> None:
    # canary 150/200, champion 180/200, d = 0.02: Agresti-Caffo p = 151/202 = 0.747525 and
    # 181/202 = 0.896040; spread sqrt((0.896040 * 0.103960 + 0.747525 * 0.252475) / 202)
    # = 0.037356; z = (0.148515 - 0.02) / 0.037356 = 3.4403
    live = LiveAccuracy(canary_rows=200, canary_right=150, champion_rows=200, champion_right=180)
    assert drop_z(live, 0.02) == pytest.approx(3.4403, abs=1e-4)


def test_a_live_accuracy_drop_rolls_back_only_when_significantly_over_the_bound() -> None:
    worse = LiveAccuracy(canary_rows=200, canary_right=150, champion_rows=200, champion_right=180)
    reason = metric_breach(worse, 0.02, 200)  # z 3.44: p = 0.00029
    assert reason is not None and "0.7500" in reason and "0.1500" in reason and "0.00029" in reason
    assert metric_breach(worse, 0.02, 201) is None  # fewer labels than min_labelled_rows
    assert metric_breach(None, 0.02, 1) is None  # no labels at all
    action, why = next_action(_at(0), _seen(120, live=worse), now=1100.0)
    assert action == ROLLBACK and "max_metric_drop" in why
    # 160/200 against 180/200: a drop of 0.10, z = 2.224, p = 0.013 > 0.01: not yet
    assert metric_breach(LiveAccuracy(200, 160, 200, 180), 0.02, 200) is None
    better = LiveAccuracy(200, 190, 200, 180)
    assert next_action(_at(0), _seen(120, live=better), now=1100.0)[0] == ADVANCE


def test_a_chance_drop_over_the_bound_holds_the_step() -> None:
    # 170/200 against 176/200: a drop of 0.03 over 0.02, but z = 0.2825, p = 0.39
    noisy = LiveAccuracy(canary_rows=200, canary_right=170, champion_rows=200, champion_right=176)
    assert metric_breach(noisy, 0.02, 200) is None
    reason = metric_excess(noisy, 0.02, 200)
    assert reason is not None and "0.0300" in reason and "not significant" in reason
    assert metric_excess(noisy, 0.03, 200) is None  # at the bound: kept
    assert metric_excess(noisy, 0.02, 201) is None  # too few labels: no verdict
    action, why = next_action(_at(0), _seen(120, live=noisy), now=1100.0)
    assert action == HOLD and "max_metric_drop" in why
    assert next_action(_at(0), _seen(120, live=noisy), now=1059.0)[0] == HOLD  # not judged


def test_a_breach_rolls_back_at_once_whatever_the_step() -> None:
    bad = _seen(10, 5)
    for step in range(3):
        assert next_action(_at(step), bad, now=1001.0)[0] == ROLLBACK


def test_a_step_holds_until_it_lasted_step_seconds_with_min_records() -> None:
    assert next_action(_at(0), GOOD, now=1059.0)[0] == HOLD
    assert next_action(_at(0), GOOD, now=1060.0)[0] == ADVANCE
    assert next_action(_at(0), _seen(0, ratio=None), now=5000.0)[0] == HOLD
    action, reason = next_action(_at(0), _seen(99), now=5000.0)
    assert action == HOLD and "99 of 100" in reason
    action, reason = next_action(_at(0), _seen(120, calls=99), now=5000.0)  # batched records
    assert action == HOLD and "99 of 100" in reason and "timed calls" in reason
    assert next_action(_at(0), _seen(100), now=5000.0)[0] == ADVANCE
    assert next_action(_at(0), _seen(100, ratio=None), now=5000.0)[0] == HOLD


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




@pytest.fixture()
def labelled_log(tmp_path: Path) -> tuple[Path, Path]:
    """Champion: c1 right (its second record, wrong, is not the request's), c2 wrong; canary
    version 2: k1 right, k2 right, k3 unlabelled; an older canary version 9: not counted."""
    rows = [("c1", "champion", "1", "Yes"), ("c1", "champion", "1", "No"),
            ("c2", "champion", "1", "No"), ("k1", "canary", "2", "Yes"),
            ("k2", "canary", "2", "No"), ("k3", "canary", "2", "No"), ("o1", "canary", "9", "No")]
    return write_log(tmp_path, rows, {"c1": "Yes", "c2": "Yes", "k1": "Yes", "k2": "No",
                                      "o1": "Yes"})


def test_live_accuracy_counts_first_records_per_role_from_the_log(
        labelled_log: tuple[Path, Path], tmp_path: Path) -> None:
    log, feedback = labelled_log
    since = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    assert live_accuracy(log, feedback, "2", since) == LiveAccuracy(2, 2, 2, 1)
    assert live_accuracy(log, tmp_path / "none", "2", since) is None
    assert live_accuracy(log, feedback, "2", datetime(2026, 12, 3, 13, 0, tzinfo=UTC)) == (
        LiveAccuracy(0, 0, 0, 0))  # nothing logged since the canary started


def test_the_controller_reads_live_accuracy_since_the_canary_started_for_classifiers(
        labelled_log: tuple[Path, Path]) -> None:
    from types import SimpleNamespace

    from pipelines.canary import live_of

    log, feedback = labelled_log
    logs = SimpleNamespace(inference=log, feedback=feedback)
    started = Progress("2", replace(PLAN, started_at=AT.timestamp() - 60), 0, 0.05, 0.0, 0.0,
                       RUNNING)
    binary = SimpleNamespace(spec=SimpleNamespace(task="binary"), logs=logs)
    assert live_of(binary, started) == LiveAccuracy(2, 2, 2, 1)
    regression = SimpleNamespace(spec=SimpleNamespace(task="regression"), logs=logs)
    assert live_of(regression, started) == LiveErrors(0, 0.0, 0.0, 0, 0.0, 0.0)  # no numbers
    later = Progress("2", replace(PLAN, started_at=AT.timestamp() + 60), 0, 0.05, 0.0, 0.0,
                     RUNNING)
    assert live_of(binary, later) == LiveAccuracy(0, 0, 0, 0)


def test_the_step_count_query_is_the_one_promtool_pins() -> None:
    """infra/prometheus/tests/canary_test.yml computes 36 records and 9 errors by hand with
    exactly the query the controller sends."""
    pinned = (REPO / "infra/prometheus/tests/canary_test.yml").read_text()
    for kind in ("records", "errors"):
        assert CANARY_COUNT.format(kind=kind, version="2", window=180) in pinned
    assert CALL_BUCKETS.format(version="2", window=180) in pinned
    for selector in (CANARY_SELECTOR, CHAMPION_SELECTOR):
        assert CALL_P95.format(selector=selector.format(version="2"), window=180) in pinned


def test_with_require_labels_promotion_waits_for_enough_labels_on_both_sides() -> None:
    strict = replace(PLAN, require_labels=True)  # min_labelled_rows 50
    last = Progress("2", strict, 2, strict.steps[2], 1000.0, 1030.0, RUNNING)
    action, why = next_action(last, _seen(120, live=LiveAccuracy(49, 45, 400, 360)), now=1060.0)
    assert action == HOLD and "49 canary and 400 champion" in why and "require_labels" in why
    assert next_action(last, _seen(120), now=1060.0)[0] == HOLD  # no labels at all
    assert next_action(last, _seen(120, live=LiveAccuracy(50, 45, 400, 360)),
                       now=1060.0)[0] == PROMOTE
    # an earlier step advances without labels: only promotion waits for them
    first = Progress("2", strict, 0, strict.steps[0], 1000.0, 1030.0, RUNNING)
    assert next_action(first, _seen(120), now=1060.0)[0] == ADVANCE
    assert next_action(_at(2), _seen(120), now=1060.0)[0] == PROMOTE  # the default: no wait


def test_an_image_model_is_refused_a_canary_in_one_line() -> None:
    """`/predict_image` uploads always meet the champion, so a canary of an image model would
    never see traffic and hold forever: refused before the registry is touched."""
    from types import SimpleNamespace

    from flywheel.errors import ConfigError
    from flywheel.steps.canary import start_canary

    params = SimpleNamespace(canary=CanaryParams.model_validate(
        yaml.safe_load((REPO / "params.yaml").read_text())["canary"]))
    ctx = SimpleNamespace(params=params, spec=SimpleNamespace(is_image=True),
                          model_name="flywheel-mnist")
    with pytest.raises(ConfigError, match="'flywheel-mnist' is an image model") as raised:
        start_canary(ctx, "2", None)  # type: ignore[arg-type]
    assert "\n" not in str(raised.value)
