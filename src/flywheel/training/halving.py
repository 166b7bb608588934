"""The successive-halving rule: which rows each rung fits on, who goes on, and what stops a fit.

Every candidate first fits on the same `min_rows` training rows; the rows grow by `factor` per
rung up to all of them. After a rung, a candidate goes on when it can still win: it is among
the best ceil(n / factor) of the n that ran, or its valid score is within `margin` of the rung's
best (scores are the selection metric on the whole valid split, the same rows for everyone).
One that goes on only for the margin must also be affordable: its next fit forecast at most
`max_cost_ratio` times the leader's (a near-tie costing 6x the leader's fit rarely pays).
A candidate also stops when its next fit is forecast past `max_candidate_s`, and the whole
search stops growing when the next rung is forecast past what is left of `budget_s`. Forecasts
scale a fit's seconds with its rows (linear: what logistic regression, boosting and an epoch of
an MLP cost). Pure functions, so the rule is tested by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def rung_rows(total: int, min_rows: int, factor: int) -> list[int]:
    """Rows per rung: min_rows, min_rows*factor, ... while at most half of `total`, then
    `total`. A rung on more than half the rows costs over half a full fit and tells little the
    full fit would not (152,808 rows by 3 from 50,000 would fit 150,000 rows, then 152,808)."""
    rows, sizes = min_rows, []
    while rows < total and 2 * rows <= total:
        sizes.append(rows)
        rows *= factor
    return [*sizes, total]


def best_first(scores: Mapping[str, float], lower_is_better: bool) -> list[str]:
    """The names best first; a tie keeps the earlier name first (as select_best does)."""
    sign = 1.0 if lower_is_better else -1.0
    return sorted(scores, key=lambda name: sign * scores[name])  # stable: ties keep order


def survivors(scores: Mapping[str, float], *, factor: int, margin: float,
              lower_is_better: bool) -> list[str]:
    """Who goes on, in the order given: the best ceil(n / factor), and any within `margin`
    of the best score. A tie keeps the earlier name first (as select_best does)."""
    ranked = best_first(scores, lower_is_better)
    best = scores[ranked[0]]
    kept = set(ranked[: math.ceil(len(ranked) / factor)])
    kept |= {name for name in ranked if abs(scores[name] - best) <= margin}
    return [name for name in scores if name in kept]


def forecast_seconds(seconds: float, rows: int, next_rows: int) -> float:
    """A fit's seconds on `next_rows`, from its seconds on `rows` (linear in rows)."""
    return seconds * next_rows / rows


def too_costly(scores: Mapping[str, float], forecasts: Mapping[str, float], *, factor: int,
               lower_is_better: bool, max_cost_ratio: float | None) -> list[str]:
    """Of the survivors (`forecasts`: their next fits' seconds), those that go on only for the
    margin and whose next fit is forecast past `max_cost_ratio` times the leader's.

    Why: the margin keeps a near-tie in the race, but a near-tie that costs several times the
    leader's fit rarely overtakes it, and with fits concurrent the next rung lasts as long as
    its dearest fit (on military, 1.4M rows, the MLP was 0.0002 behind HGB on the 150,000-row
    rung, its full fit forecast at 6.4x HGB's; HGB won). The leader and the best
    ceil(n / factor) (`scores`: every candidate that ran) never stop by this; exactly
    `max_cost_ratio` times still goes on; None: no cost limit.
    """
    if max_cost_ratio is None:
        return []
    order = best_first(scores, lower_is_better)
    top = set(order[: math.ceil(len(order) / factor)])
    limit = max_cost_ratio * forecasts[order[0]]
    return [name for name, seconds in forecasts.items() if name not in top and seconds > limit]


def over_limit(forecasts: Mapping[str, float], max_candidate_s: float | None) -> list[str]:
    """The candidates whose next fit is forecast past the per-candidate limit."""
    if max_candidate_s is None:
        return []
    return [name for name, seconds in forecasts.items() if seconds > max_candidate_s]


def rung_fits_budget(forecasts: Sequence[float], workers: int, spent_s: float,
                     budget_s: float | None) -> bool:
    """Whether the next rung, its fits shared out over `workers`, ends within the budget.

    The wall time of a rung is at least its longest fit and at least the total spread evenly.
    """
    if budget_s is None or not forecasts:
        return True
    wall = max(max(forecasts), sum(forecasts) / max(1, min(workers, len(forecasts))))
    return spent_s + wall <= budget_s
