"""A regression canary's live mean absolute error against the champion's, on labelled requests.

A regression's answer is never equal to its label, so accuracy says nothing; its mean absolute
error (MAE) does, but in the target's units, so the bound is relative: the canary's MAE at most
(1 + r) times the champion's, r = canary.max_mae_increase. With n labelled requests per role,
their mean absolute errors m and the sample variances s^2 of the absolute errors, and once both
sides have min_labelled_rows labels:

- **rollback** (`mae_breach`): D = m_canary - (1 + r) m_champion is significantly over 0:
  z = D / sqrt(s_canary^2 / n_canary + (1 + r)^2 s_champion^2 / n_champion) (Welch's statistic;
  the central limit holds for a mean of a few hundred absolute errors unless their tail is very
  heavy), and P(Z >= z) <= ALPHA;
- **hold** (`mae_excess`, when a step would pass): a step never passes while D > 0.
"""

from __future__ import annotations

import math

from flywheel.monitoring.canary_live import LiveErrors, labelled_enough

ALPHA = 0.01  # per evaluation: how often a canary exactly at the bound rolls back


def _mean_var(rows: int, total: float, squares: float) -> tuple[float, float]:
    """Mean and sample variance (n - 1) from a count, a sum and a sum of squares."""
    mean = total / rows
    return mean, max(0.0, (squares - rows * mean * mean) / max(rows - 1, 1))


def mae_z(live: LiveErrors, max_increase: float) -> float:
    """Welch's z of the canary's MAE minus (1 + max_increase) times the champion's."""
    canary, canary_var = _mean_var(live.canary_rows, live.canary_abs, live.canary_sq)
    champion, champion_var = _mean_var(live.champion_rows, live.champion_abs, live.champion_sq)
    factor = 1 + max_increase
    spread = math.sqrt(canary_var / live.canary_rows
                       + factor * factor * champion_var / live.champion_rows)
    excess = canary - factor * champion
    if spread == 0:
        return math.inf if excess > 0 else -math.inf
    return excess / spread


def mae_breach(live: LiveErrors | None, max_increase: float, min_rows: int) -> str | None:
    """Why the canary's live MAE rolls it back, in one line; None unless it is significantly
    over (1 + max_increase) times the champion's."""
    if live is None or not labelled_enough(live, min_rows):
        return None
    from scipy.stats import norm

    p = float(norm.sf(mae_z(live, max_increase)))
    if p > ALPHA:
        return None
    return (f"{_seen(live)}, over 1 + {max_increase:g} times it (canary.max_mae_increase) at "
            f"p = {p:.2g}")


def mae_excess(live: LiveErrors | None, max_increase: float, min_rows: int) -> str | None:
    """Why a step may not pass on its live MAE yet: over the bound, not significantly."""
    if live is None or not labelled_enough(live, min_rows):
        return None
    canary = live.canary_abs / live.canary_rows
    champion = live.champion_abs / live.champion_rows
    if round(canary - (1 + max_increase) * champion, 12) <= 0:
        return None
    return (f"{_seen(live)}, over 1 + {max_increase:g} times it (canary.max_mae_increase), "
            "not significant yet")


def _seen(live: LiveErrors) -> str:
    canary = live.canary_abs / live.canary_rows
    champion = live.champion_abs / live.champion_rows
    return (f"live MAE {canary:.4g} on {live.canary_rows} labelled requests against the "
            f"champion's {champion:.4g} on {live.champion_rows}")
