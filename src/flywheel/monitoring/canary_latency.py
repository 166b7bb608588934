"""Whether a canary is slower than the plan allows, judged on counts as its errors are.

A p95 of a handful of calls is its slowest call or two: one slow call on a noisy machine is
not a slow canary. The bound `canary.max_latency_ratio` R says the canary's p95 model-call time
is at most R x the champion's p95 over the same step. That is the same as saying at most 5% of
the canary's calls take longer than R x the champion's p95, which can be counted: with n timed
canary calls over the step, of which k took longer than B (the first bucket bound of
`flywheel_routed_call_seconds` at or above R x the champion's p95):

- at any n, the canary rolls back when k slow calls are unlikely from a canary that keeps the
  bound: P(X >= k | X ~ Binomial(n, 0.05)) <= ALPHA (the exact one-sided test of
  flywheel.monitoring.canary_errors). B rounds the threshold up to a bucket bound, so a canary
  at the bound has at most 5% of calls past B: the test keeps its level, at some loss of power
  (the buckets are 1.2x apart);
- when a step would pass (it lasted step_seconds with canary.min_records records and calls),
  the canary's p95 over the step is held to R x the champion's as it is: a step never passes on
  a p95 ratio over the bound. Once, not at every evaluation: a p95 of a few hundred calls is
  noisy where the tail is flat, and judging it at each of a step's evaluations would add up
  their false rollbacks (benchmarks/canary_latency.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from flywheel.monitoring.canary_errors import binomial_tail

SLOW_SHARE = 0.05  # calls past a p95: the share a canary exactly at the bound has past R x p95
ALPHA = 0.01  # a chance per evaluation; below the error test's 0.05: a first call is often slow

Buckets = Sequence[tuple[float, int]]  # (le, cumulative calls), as Prometheus's histogram


def slow_calls(buckets: Buckets, threshold: float) -> tuple[int, int, float]:
    """(calls past the first bucket bound >= threshold, all calls, that bound) of a cumulative
    histogram; (0, n, inf) when no finite bound reaches the threshold."""
    ordered = sorted(buckets)
    total = ordered[-1][1] if ordered else 0
    for le, within in ordered:
        if le >= threshold:
            return max(0, total - within), total, le
    return 0, total, math.inf


def latency_breach(buckets: Buckets, champion_p95: float | None,
                   max_ratio: float) -> str | None:
    """Why the canary's slow calls roll it back now, in one line; None while they are not
    significantly over 5% past the bound (or the champion has no p95 to compare with)."""
    if champion_p95 is None or champion_p95 <= 0:
        return None
    slow, calls, bound = slow_calls(buckets, max_ratio * champion_p95)
    tail = binomial_tail(slow, calls, SLOW_SHARE)
    if tail > ALPHA:
        return None
    return (f"canary calls slower than {bound:g} s (>= {max_ratio:g}x the champion's p95 "
            f"{champion_p95:.4g} s, canary.max_latency_ratio): {slow} of {calls}, over the "
            f"{SLOW_SHARE:.0%} a p95 allows at p = {tail:.2g} <= {ALPHA:g}")


def p95_breach(ratio: float, calls: int, max_ratio: float) -> str | None:
    """The step's verdict on its p95 as it is: why it fails, None when it keeps the bound."""
    if ratio <= max_ratio:
        return None
    return (f"p95 model-call time {ratio:.2f}x the champion's over the step ({calls} canary "
            f"calls), over the bound {max_ratio:g}x (canary.max_latency_ratio)")
