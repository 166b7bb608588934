"""How often the canary's error rules roll back a canary as good as the champion, and a worse one.

Simulates what the controller sees over a whole canary of params.yaml's steps (5%, 25% and 50%;
passing the 50% step promotes): in each step, the canary's records and the champion's
((1 - share) / share for each of the canary's: 19 at 5%), each failing independently with its
error ratio, counted from the step's start as `increase()` counts them. The controller looks
every `--look` canary records: flywheel.monitoring.canary_errors.error_breach rolls back (the
exact binomial test against the champion's upper limit, ALPHA in all); once the step has
`--min-records` records (its step_seconds taken as past by then, the earliest a step can pass)
it passes unless error_excess holds it (the observed excess over the bound). A step that has
neither rolled back nor passed by `--max-records` canary records counts as holding. Prints, per
scenario, the share of `--trials` canaries rolled back, promoted and still holding, and the
canary records the first step took (median): for a canary with the champion's own error ratio
(false rollbacks), one exactly at the bound (champion + max_error_excess), and worse ones
(promoted: the misses), at two champion error ratios.

    .venv/bin/python benchmarks/canary_errors.py [--trials 1000] [--excess 0.005] [--look 10]
        [--min-records 100] [--max-records 2000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flywheel.monitoring.canary_errors import ALPHA, error_breach, error_excess  # noqa: E402

SHARES = (0.05, 0.25, 0.5)  # params.yaml canary.steps up to the one whose pass promotes
ROLLED_BACK, PASSED, HOLDING = "rolled back", "passed", "holding"


def one_step(rng: np.random.Generator, share: float, champion_p: float, canary_p: float,
             args: argparse.Namespace) -> tuple[str, int]:
    """How one step ends, and at how many canary records."""
    per = (1 - share) / share
    n = args.max_records
    canary = np.cumsum(rng.random(n) < canary_p)
    champion = np.cumsum(rng.random(round(n * per)) < champion_p)
    for seen in range(args.look, n + 1, args.look):
        errors, theirs = int(canary[seen - 1]), round(seen * per)
        counts = (errors, seen, int(champion[theirs - 1]), theirs, args.excess)
        if error_breach(*counts) is not None:
            return ROLLED_BACK, seen
        if seen >= args.min_records and error_excess(*counts) is None:
            return PASSED, seen
    return HOLDING, n


def one_canary(rng: np.random.Generator, champion_p: float, canary_p: float,
               args: argparse.Namespace) -> tuple[str, int]:
    """How the canary ends (promoted when every step passed) and the first step's records."""
    first = 0
    for share in SHARES:
        outcome, seen = one_step(rng, share, champion_p, canary_p, args)
        first = first or seen
        if outcome != PASSED:
            return outcome, first
    return "promoted", first


def scenario(label: str, champion_p: float, canary_p: float, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(round(champion_p * 1e6) * 1000 + round(canary_p * 1e4))
    runs = [one_canary(rng, champion_p, canary_p, args) for _ in range(args.trials)]
    share = {end: sum(outcome == end for outcome, _ in runs) / args.trials
             for end in (ROLLED_BACK, "promoted", HOLDING)}
    median = int(np.median([first for _, first in runs]))
    print(f"| {label:<32} | {champion_p:g} | {share[ROLLED_BACK]:.1%} | {share['promoted']:.1%} "
          f"| {share[HOLDING]:.1%} | {median} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--excess", type=float, default=0.005, help="canary.max_error_excess")
    parser.add_argument("--look", type=int, default=10, help="canary records per evaluation")
    parser.add_argument("--min-records", type=int, default=100, help="canary.min_records")
    parser.add_argument("--max-records", type=int, default=2000, help="a step's records at most")
    args = parser.parse_args()
    print(f"{args.trials} canaries each; steps {SHARES}; a look every {args.look} canary records;"
          f" ALPHA {ALPHA}; max_error_excess {args.excess}; min_records {args.min_records}")
    print("| canary | champion | rolled back | promoted | holding | first step's records |")
    print("|---|---|---:|---:|---:|---:|")
    for champion_p in (0.001, 0.01):
        for label, extra in (("as good as the champion (false)", 0.0),
                             ("exactly at the bound", args.excess), ("+1% errors", 0.01),
                             ("+2% errors", 0.02), ("+5% errors", 0.05),
                             ("+20% errors", 0.2)):
            scenario(label, champion_p, champion_p + extra, args)
        scenario("fails every call", champion_p, 1.0, args)


if __name__ == "__main__":
    main()
