"""The no-drift distribution of PSI, when the reference is a sample too.

Under "no drift" the reference (n rows) and the window (m rows) are two samples of the same
population. Binned, each is a multinomial draw over the population's bin shares, so the null
is simulated by drawing a reference-sized and a window-sized multinomial sample from the
reference shares (the plug-in estimate of the population) and taking PSI between the two.
Treating the reference as the population instead (the old calibration) ignores the reference's
own noise, which dominates as soon as the window is larger than the reference.

Cost is O(resamples × bins) per (shares, n, m), whatever the window's rows; the sorted null is
cached per window-size bucket so a monitor that runs every hour recomputes nothing.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from flywheel.monitoring.distances import psi, shares

# Window sizes are rounded down to this geometric grid (steps of 2^(1/8), about 9%) before
# calibrating. A smaller window has a wider null, so rounding down only makes the level stricter.
BUCKETS_PER_DOUBLING = 8
# At least this many resampled values must lie beyond the strictest level that is tested.
TAIL_DRAWS = 10


def window_bucket(rows: int) -> int:
    """The largest grid size at or below `rows` (grid: round(2^(j/8)), j = 0, 1, ...)."""
    if rows < 1:
        return 0
    step = math.floor(math.log2(rows) * BUCKETS_PER_DOUBLING + 1e-9)
    bucket = round(2 ** (step / BUCKETS_PER_DOUBLING))
    return bucket if bucket <= rows else round(2 ** ((step - 1) / BUCKETS_PER_DOUBLING))


def resamples_for(strictest_level: float, minimum: int) -> int:
    """Enough resamples that TAIL_DRAWS lie beyond `strictest_level` (at least `minimum`)."""
    return max(minimum, math.ceil(TAIL_DRAWS / strictest_level))


def null_psi(
    reference: np.ndarray, reference_rows: int, window_rows: int, resamples: int, seed: int
) -> np.ndarray:
    """PSI between resampled reference and window samples under no drift, sorted ascending."""
    ref = np.ascontiguousarray(reference, dtype="float64")
    return _null_psi(ref.tobytes(), int(reference_rows), int(window_rows), resamples, seed)


@functools.lru_cache(maxsize=512)
def _null_psi(reference: bytes, n: int, m: int, resamples: int, seed: int) -> np.ndarray:
    ref = np.frombuffer(reference, dtype="float64")
    population = ref / ref.sum()
    rng = np.random.default_rng(seed)
    ref_draws = shares(rng.multinomial(n, population, size=resamples))
    window_draws = shares(rng.multinomial(m, population, size=resamples))
    values = np.sort(psi(ref_draws, window_draws))
    values.flags.writeable = False  # shared by every caller through the cache
    return values


def p_value(null: np.ndarray, observed: float) -> float:
    """(1 + #{null ≥ observed}) / (1 + B): the resampling p-value, never 0."""
    beyond = null.size - int(np.searchsorted(null, observed, side="left"))
    return (1 + beyond) / (1 + null.size)


def alarm_level(null: np.ndarray, level: float) -> float | None:
    """The PSI above which `p_value <= level`: the (r+1)-th largest null value, r = ⌊level(B+1)⌋-1.

    An empirical upper quantile of the null. None when the null is too short to reach `level`.
    """
    r = math.floor(level * (null.size + 1) + 1e-12) - 1
    if r < 0:
        return None
    return float(null[null.size - 1 - r])
