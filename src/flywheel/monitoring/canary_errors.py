"""Whether a canary's errors exceed the champion's by more than the plan allows, on few records.

A ratio of a handful of records says little: 1 error in 3 records is 33%, 0 in 3 is 0%. With
k canary errors in n records over the step, and the champion's error ratio p0 over the same
window, the bound is b = p0 + canary.max_error_excess, and:

- at any n, the canary rolls back at once when k errors are unlikely from a canary that keeps
  the bound: P(X >= k | X ~ Binomial(n, b)) <= ALPHA (an exact one-sided binomial test). A
  canary that fails every call is caught on its first few records (1 of 1 at b = 0.01: 0.01);
- once n >= canary.min_records, the observed excess k/n - p0 is held to the bound as it is
  (the step's verdict: a step never passes on an excess over the bound);
- below min_records with no significant excess, there is no verdict: the step holds.
"""

from __future__ import annotations

ALPHA = 0.05  # the chance of rolling back a canary whose true error ratio is exactly the bound


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): scipy's survival function at k - 1, which keeps a
    far tail (1e-20 stays 1e-20, not 1 - 1 = 0)."""
    from scipy.stats import binom

    if k <= 0:
        return 1.0
    return float(binom.sf(k - 1, n, min(max(p, 0.0), 1.0)))


def error_breach(errors: int, records: int, champion_ratio: float, max_excess: float,
                 min_records: int) -> str | None:
    """Why the canary's errors roll it back, in one line; None while they keep the bound (or
    are too few to say)."""
    if records <= 0 or errors <= 0:
        return None
    bound = min(1.0, champion_ratio + max_excess)
    tail = binomial_tail(errors, records, bound)
    seen = (f"canary errors {errors} of {records} records against the champion's error ratio "
            f"{champion_ratio:.4f}")
    if tail <= ALPHA:
        return (f"{seen}: an excess over the bound {max_excess:g} (canary.max_error_excess) "
                f"at p = {tail:.2g} <= {ALPHA:g}")
    excess = round(errors / records - champion_ratio, 12)  # a ratio at the bound keeps it
    if records >= min_records and excess > max_excess:
        return (f"{seen}: excess {excess:.4f} over the bound {max_excess:g} "
                f"(canary.max_error_excess) after {records} >= {min_records} records "
                "(canary.min_records)")
    return None
