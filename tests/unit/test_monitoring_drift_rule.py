"""The drift decision rule: its formulas pinned by hand, its error rates proven by simulation.

Simulations draw a fresh reference sample per trial (the reference is a sample too, which is
what the null must account for) and a window of 500, 10,000 or 100,000 rows; the window's bin
counts are drawn directly as a multinomial over the population's bin probabilities, which is
exactly what binning that many rows gives, at a fraction of the cost.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.stats import norm

from flywheel.monitoring.distances import psi, shares
from flywheel.monitoring.levels import good_turing_unseen, keep_mask, split_counts
from flywheel.monitoring.null import (
    alarm_level,
    null_psi,
    p_value,
    resamples_for,
    window_bucket,
)
from flywheel.monitoring.profile import categorical_profile, numeric_profile
from flywheel.monitoring.verdict import holm, streak

WINDOWS = (500, 10_000, 100_000)
REFERENCE_ROWS = 5_000  # about the default table's training split
ZIPF = 1 / np.arange(1, 3001) / np.sum(1 / np.arange(1, 3001))
FEW = np.array([0.5, 0.3, 0.15, 0.05])
# The strictest level a feature of the default table meets: Holm's first step, alpha / tests
# (19 features and the score at monitor.alpha 0.01); the loosest is alpha itself.
STRICTEST = 0.01 / 20


def test_good_turing_unseen_share_is_singletons_over_rows() -> None:
    # 7 rows; levels seen 3, 1, 1, 2 times: two singletons -> 2/7 of the mass is unseen
    assert good_turing_unseen(np.array([3, 1, 1, 2, 0])) == pytest.approx(2 / 7)
    assert good_turing_unseen(np.array([4, 4])) == 0.0 and good_turing_unseen(np.array([])) == 0.0


def test_kept_levels_need_rows_and_the_cut_pools_ties_whole() -> None:
    assert keep_mask(np.array([50, 9, 10, 30]), 10, 30).tolist() == [True, False, True, True]
    # at most two levels: the third largest count is 30, so only counts above 30 stay
    assert keep_mask(np.array([50, 30, 30, 40]), 10, 2).tolist() == [True, False, False, True]


def test_split_counts_keep_everything_when_every_level_is_frequent() -> None:
    codes = np.array([0] * 40 + [1] * 60 + [-1] * 5)
    kept, counts = split_counts(codes, 2, min_rows=10, max_levels=30, seed=0)
    assert kept.tolist() == [True, True] and counts.tolist() == [40, 60, 0, 5]


def test_split_counts_choose_on_a_quarter_and_count_on_the_rest() -> None:
    rng = np.random.default_rng(0)
    codes = rng.choice(3000, size=20_000, p=ZIPF)
    kept, counts = split_counts(codes, 3000, min_rows=10, max_levels=30, seed=5)
    chooser = np.random.default_rng(5).random(codes.size) < 0.25
    rest = codes[~chooser]
    assert counts.sum() == rest.size and 0 < kept.sum() <= 30
    assert counts[-2] == np.isin(rest, np.flatnonzero(~kept)).sum()  # rare and unseen pooled
    assert counts[0] == np.count_nonzero(rest == np.flatnonzero(kept)[0])


def test_p_value_and_alarm_level_by_hand_and_consistent() -> None:
    null = np.array([0.1, 0.2, 0.3, 0.4])
    assert p_value(null, 0.25) == pytest.approx(3 / 5)  # (1 + two values >= 0.25) / (1 + 4)
    assert p_value(null, 0.5) == pytest.approx(1 / 5) and p_value(null, 0.4) == pytest.approx(0.4)
    values = np.arange(1.0, 20.0)  # 19 draws: level 0.1 -> r = floor(0.1 * 20) - 1 = 1
    assert alarm_level(values, 0.1) == 18.0  # the second largest
    assert p_value(values, 18.5) <= 0.1 < p_value(values, 18.0)  # above the level <=> p <= 0.1
    assert alarm_level(values, 0.01) is None  # 19 draws cannot reach 1%
    assert resamples_for(0.0005, 2000) == 20_000 and resamples_for(0.05, 2000) == 2000


def test_window_sizes_round_down_to_a_grid_of_9_percent_steps() -> None:
    # log2(500) * 8 = 71.7 -> 2^(71/8) = 469.5 -> 470; grid points map to themselves
    assert window_bucket(500) == 470 and window_bucket(470) == 470 and window_bucket(1) == 1
    assert window_bucket(0) == 0
    rows = np.arange(16, 200_000, 37)
    buckets = np.array([window_bucket(int(r)) for r in rows])
    assert (buckets <= rows).all() and (buckets > rows / 2 ** (1 / 8) - 1).all()


def test_two_sample_null_has_the_chi_square_mean_of_both_samples() -> None:
    # Two independent samples (n, m) of 10 equal bins: PSI ~ (1/n + 1/m) chi2(9) for large
    # counts, mean 9 (1/n + 1/m). The reference-only calibration had 9/m: at m = 100,000 and
    # n = 5,000 that is 21x too small.
    null = null_psi(np.full(10, 0.1), 5_000, 100_000, 4000, 1)
    assert null.mean() == pytest.approx(9 * (1 / 5_000 + 1 / 100_000), rel=0.05)
    assert null_psi(np.full(10, 0.1), 5_000, 100_000, 4000, 1) is null  # cached


def test_holm_by_hand() -> None:
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2 -> stop: first and last rejected
    rejected, levels = holm([0.01, 0.04, 0.03, 0.005], 0.05)
    assert rejected.tolist() == [True, False, False, True]
    assert levels.tolist() == pytest.approx([0.05 / 3, 0.05, 0.025, 0.0125])
    assert holm([], 0.05)[0].tolist() == []


def test_persistence_counts_consecutive_windows_once() -> None:
    end = datetime(2025, 1, 1, 12, tzinfo=UTC)
    hour = timedelta(hours=1)

    def report(ended: datetime, run: int, version: str = "3") -> dict:
        return {
            "model_version": version,
            "window": {"end": ended.isoformat()},
            "drift": {"streak": run},
        }

    now = (end - hour, end)
    assert streak(False, report(end - hour, 2), "3", now) == 0
    assert streak(True, None, "3", now) == 1
    assert streak(True, report(end - hour, 2), "3", now) == 3  # the window just before
    assert streak(True, report(end - hour * 3, 2), "3", now) == 1  # a gap of two windows
    assert streak(True, report(end - hour / 10, 2), "3", now) == 2  # the same rows again
    assert streak(True, report(end - hour, 2, version="2"), "3", now) == 1
    assert streak(True, report(end - hour, 0), "3", now) == 1


def numeric_p(rng: np.random.Generator, rows: int, shift: float, level: float) -> float:
    reference = rng.normal(size=REFERENCE_ROWS)
    profile = numeric_profile(reference, 10)
    edges = np.asarray(profile["edges"])
    probs = np.diff(np.concatenate([[0.0], norm.cdf(edges - shift), [1.0]]))
    counts = np.append(rng.multinomial(rows, probs), 0)  # bins, then missing
    ref = np.asarray(profile["shares"])
    null = null_psi(ref, REFERENCE_ROWS, window_bucket(rows), resamples_for(level, 2000), 42)
    return p_value(null, float(psi(ref, shares(counts))))


def categorical_p(rng: np.random.Generator, rows: int, population: np.ndarray) -> float:
    names = np.array([f"v{i}" for i in range(population.size)], dtype=object)
    reference = names[rng.choice(population.size, size=REFERENCE_ROWS, p=population)]
    profile = categorical_profile(reference, 10, 30, int(rng.integers(1 << 30)))
    position = {name: i for i, name in enumerate(profile["categories"])}
    slot = np.array([position.get(name, len(position)) for name in names])
    counts = np.bincount(
        slot, weights=rng.multinomial(rows, population), minlength=len(position) + 2
    )
    ref = np.asarray(profile["shares"])
    null = null_psi(ref, profile["rows"], window_bucket(rows), 2000, 42)
    return p_value(null, float(psi(ref, shares(counts))))


def rates(p_values: np.ndarray) -> tuple[float, float, float]:
    return tuple(float((p_values <= a).mean()) for a in (STRICTEST, 0.01, 0.05))  # type: ignore[return-value]


@pytest.mark.slow
@pytest.mark.parametrize("rows", WINDOWS)
@pytest.mark.parametrize("kind", ["numeric", "categorical", "zipf-3000"])
def test_no_drift_false_alarms_per_feature(kind: str, rows: int) -> None:
    """With min_psi 0. Trials: 300 (zipf 200). At the strictest level a default-table feature
    meets, at most 1% alarms; at the loosest (alpha 1%) and at 5%, the nominal rate within
    binomial noise: the null is calibrated, not merely conservative."""
    rng = np.random.default_rng([rows, len(kind)])
    trials = 200 if kind == "zipf-3000" else 300
    if kind == "numeric":
        draw = [numeric_p(rng, rows, 0.0, 0.01) for _ in range(trials)]
    else:
        population = FEW if kind == "categorical" else ZIPF
        draw = [categorical_p(rng, rows, population) for _ in range(trials)]
    strict, one, five = rates(np.asarray(draw))
    assert strict <= 0.01, (kind, rows, strict)
    se1, se5 = math.sqrt(0.01 * 0.99 / trials), math.sqrt(0.05 * 0.95 / trials)
    assert one <= 0.01 + 2.5 * se1, (kind, rows, one)
    assert 0.05 - 3 * se5 <= five <= 0.05 + 3 * se5, (kind, rows, five)


@pytest.mark.slow
@pytest.mark.parametrize("rows", [10_000, 100_000])
def test_a_fifth_of_a_deviation_is_caught_at_volume(rows: int) -> None:
    """+0.2 sd on a numeric feature, at the strictest Holm level of the default table."""
    rng = np.random.default_rng(rows)
    caught = np.mean([numeric_p(rng, rows, 0.2, STRICTEST) <= STRICTEST for _ in range(200)])
    assert caught >= 0.95


def test_an_arrow_backed_column_in_several_chunks_profiles_as_one() -> None:
    """A large Parquet table reads into Arrow-backed columns of several chunks (promote on
    AER/Fertility's 254k rows failed here); the profile is that of the same values in one."""
    import pandas as pd
    import pyarrow as pa

    chunks = [["a"] * 30 + ["b"] * 20, ["a"] * 10 + ["c"] * 40]
    chunked = pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array(chunks)))
    plain = pd.Series(chunks[0] + chunks[1])
    assert categorical_profile(chunked, 10, 30, 0) == categorical_profile(plain, 10, 30, 0)
