"""Whether a canary's errors exceed the champion's by more than the plan allows, on few records.

A ratio of a handful of records says little: 1 error in 3 records is 33%, 0 in 3 is 0%, and
the champion's ratio over the same window is itself a sample (at a 50% step, as few records as
the canary's). With k canary errors in n records, m champion errors in M records over the step
and d = canary.max_error_excess, the canary must keep p_canary <= p_champion + d. Two rules:

- **rollback** (`error_breach`, every evaluation): U, the champion's ratio at its one-sided
  Clopper-Pearson upper limit at level ALPHA / 2 (scipy's beta quantile), and then the exact
  one-sided binomial test P(X >= k | X ~ Binomial(n, U + d)) <= ALPHA / 2. A canary that keeps
  the bound is rolled back at most ALPHA of evaluations: U falls below the champion's true
  ratio at most ALPHA / 2 of the time, and otherwise the test is at a bound at least as high.
  A canary that fails every call is caught on its first records (2 of 2 against a champion
  with 0 errors in 1000 records: U = 0.0053, p = 0.00023);
- **hold** (`error_excess`, when a step would pass): a step never passes while the observed
  excess k/n - m/M is over d. The step runs on, gathering records, until the test rolls the
  canary back or the excess falls within d.

Holding the observed excess to d as a rollback rule at every evaluation, as an earlier version
did, rolled back 8-52% of canaries as good as the champion (a few records' ratio swings past a
0.5% bound by chance); README "Canary" gives the simulated error rates of these two rules
(`benchmarks/canary_errors.py`). With no champion records over the step there is nothing to
compare with, so no verdict: the step holds (the champion answers a failing canary's records).
"""

from __future__ import annotations

ALPHA = 0.01  # per evaluation: how often a canary that keeps the bound is rolled back, at most


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): scipy's survival function at k - 1, which keeps a
    far tail (1e-20 stays 1e-20, not 1 - 1 = 0)."""
    from scipy.stats import binom

    if k <= 0:
        return 1.0
    return float(binom.sf(k - 1, n, min(max(p, 0.0), 1.0)))


def upper_limit(errors: int, records: int, level: float) -> float:
    """The one-sided Clopper-Pearson upper limit of an error ratio: the ratio p at which
    P(X <= errors | Binomial(records, p)) = level (the Beta(errors + 1, records - errors)
    quantile at 1 - level); 1 when every record failed."""
    from scipy.stats import beta

    if errors >= records:
        return 1.0
    return float(beta.ppf(1 - level, errors + 1, records - errors))


def _seen(errors: int, records: int, champion_errors: int, champion_records: int) -> str:
    return (f"canary errors {errors} of {records} records against the champion's "
            f"{champion_errors} of {champion_records}")


def error_breach(errors: int, records: int, champion_errors: int, champion_records: int,
                 max_excess: float) -> str | None:
    """Why the canary's errors roll it back, in one line; None unless they are significantly
    over the champion's ratio plus `max_excess`."""
    if records <= 0 or errors <= 0 or champion_records <= 0:
        return None
    champion = upper_limit(champion_errors, champion_records, ALPHA / 2)
    tail = binomial_tail(errors, records, min(1.0, champion + max_excess))
    if tail > ALPHA / 2:
        return None
    return (f"{_seen(errors, records, champion_errors, champion_records)}: over the champion's "
            f"ratio (at most {champion:.4f}) plus {max_excess:g} (canary.max_error_excess) at "
            f"p = {tail:.2g} <= {ALPHA / 2:g}")


def error_excess(errors: int, records: int, champion_errors: int, champion_records: int,
                 max_excess: float) -> str | None:
    """Why a step may not pass on its errors yet, in one line: the observed excess is over the
    bound, though not significantly (that would be `error_breach`); None when it keeps it."""
    if records <= 0:
        return None
    champion = champion_errors / champion_records if champion_records else 0.0
    excess = round(errors / records - champion, 12)  # a ratio at the bound keeps it
    if excess <= max_excess:
        return None
    return (f"{_seen(errors, records, champion_errors, champion_records)}: excess "
            f"{excess:.4f} over the bound {max_excess:g} (canary.max_error_excess), not "
            "significant yet")
