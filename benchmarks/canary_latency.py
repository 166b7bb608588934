"""How often the canary's latency rule rolls back an equally fast canary, and a 2x slower one.

Simulates what the controller sees over one step on a noisy machine: the champion's and the
canary's model-call times (lognormal around 2 ms, sigma 0.4, with a share of stalls of 3-10x,
3% unless `--stalls` says, that hit both alike), bucketed as `flywheel_routed_call_seconds`
buckets them (flywheel.serving.canary_metrics.CALL_BUCKETS), the champion taking 19 calls for
each of the canary's (a 5% step). The controller looks every `--look` canary calls with the
counts so far (the slow-call test, flywheel.monitoring.canary_latency.latency_breach, the
champion's p95 interpolated in its bucket as Prometheus's histogram_quantile does), and judges
the step's p95 ratio (p95_breach) when the step would pass. Prints the share of trials rolled
back in a step that ends with 100 and with 500 canary calls, and by the slow-call test alone:
for a canary as fast as the champion (false rollbacks) and for one whose every call takes 2x
as long (the power).

    .venv/bin/python benchmarks/canary_latency.py [--trials 2000] [--ratio 1.5] [--look 10]
        [--stalls 0.03]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flywheel.monitoring.canary_latency import latency_breach, p95_breach  # noqa: E402
from flywheel.serving.canary_metrics import CALL_BUCKETS  # noqa: E402

BOUNDS = np.array(CALL_BUCKETS)
CHECKPOINTS = (100, 500)


def call_times(rng: np.random.Generator, n: int, slower: float, stalls: float) -> np.ndarray:
    """n call times in seconds: lognormal around 2 ms, a share `stalls` of them 3-10x, all
    `slower` x."""
    times = rng.lognormal(np.log(0.002), 0.4, n)
    stalled = rng.random(n) < stalls
    times[stalled] *= rng.uniform(3, 10, stalled.sum())
    return times * slower


def cumulative(times: np.ndarray) -> list[tuple[float, int]]:
    """Prometheus's cumulative buckets, +Inf last."""
    counts = np.searchsorted(np.sort(times), BOUNDS, side="right")
    return [*zip(CALL_BUCKETS, counts.tolist(), strict=True), (float("inf"), len(times))]


def p95(buckets: list[tuple[float, int]]) -> float:
    """histogram_quantile(0.95, ...): linear within the bucket the rank falls in."""
    rank, lower, below = 0.95 * buckets[-1][1], 0.0, 0
    for le, within in buckets:
        if within >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(within - below, 1)
        lower, below = le, within
    return lower


def rolled_back(rng: np.random.Generator, slower: float, ratio: float, look: int,
                stalls: float) -> list[bool]:
    """Per checkpoint c: whether the slow-call test rolled the canary back at an evaluation up
    to c calls, and whether a step that ends with c canary calls rolls it back (that test, or
    the step's p95 ratio when it would pass)."""
    canary = call_times(rng, CHECKPOINTS[-1], slower, stalls)
    champion = call_times(rng, 19 * CHECKPOINTS[-1], 1.0, stalls)
    fired, outcomes = False, []
    for n in range(look, CHECKPOINTS[-1] + 1, look):
        mine, theirs = cumulative(canary[:n]), cumulative(champion[:19 * n])
        reference = p95(theirs)
        fired = fired or latency_breach(mine, reference, ratio) is not None
        if n in CHECKPOINTS:
            outcomes += [fired, fired or p95_breach(p95(mine) / reference, n, ratio) is not None]
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--ratio", type=float, default=1.5, help="canary.max_latency_ratio")
    parser.add_argument("--look", type=int, default=10, help="canary calls between evaluations")
    parser.add_argument("--stalls", type=float, default=0.03, help="share of stalled calls")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for name, slower in (("equally fast (false rollbacks)", 1.0), ("2x slower (power)", 2.0)):
        outcomes = np.array([rolled_back(rng, slower, args.ratio, args.look, args.stalls)
                             for _ in range(args.trials)])
        shares = outcomes.mean(axis=0).reshape(len(CHECKPOINTS), 2)
        print(f"{name:32s} " + "  ".join(
            f"step of {c} calls: {both:.3f} (slow-call test alone {alone:.3f})"
            for c, (alone, both) in zip(CHECKPOINTS, shares, strict=True)))


if __name__ == "__main__":
    main()
