"""How often the canary's live-metric rules roll back a canary as good as the champion, and a
worse one: accuracy for a classifier, mean absolute error (MAE) for a regression.

Simulates a whole canary of params.yaml's steps (5%, 25% and 50%; passing the 50% step
promotes) with every request labelled through `/feedback` (`--labelled` for a share): the
champion answering (1 - share) / share requests per canary request, the counts taken since the
canary started as the controller takes them. A classifier's answers are right with its role's
accuracy; a regression's absolute errors are |N(0, sigma)|, the champion's sigma 1 and the
canary's its MAE ratio. Every `--look` canary requests the controller asks
flywheel.monitoring.canary_live (metric_breach, metric_excess: Agresti-Caffo z test) or
flywheel.monitoring.canary_mae (mae_breach, mae_excess: Welch z test): a breach rolls back
(at ALPHA, once both sides have `--min-rows` labels); a step passes at its first look with
`--min-records` canary requests unless the excess rule holds it (the observed metric over the
bound), and, with `--require-labels`, the last step until both sides have `--min-rows` labels.
A step undecided at `--max-records` canary requests counts as holding. Prints the share of
`--trials` canaries rolled back, promoted and holding: for canaries as good as the champion
(false rollbacks), exactly at the bound, and worse ones (promoted: the misses).

    .venv/bin/python benchmarks/canary_accuracy.py [--task regression] [--trials 1000]
        [--drop 0.02] [--increase 0.05] [--look 10] [--min-records 100] [--min-rows 200]
        [--max-records 2000] [--labelled 1.0] [--require-labels]
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flywheel.monitoring.canary_live import (  # noqa: E402
    ALPHA,
    LiveAccuracy,
    LiveErrors,
    metric_breach,
    metric_excess,
)
from flywheel.monitoring.canary_mae import mae_breach, mae_excess  # noqa: E402

SHARES = (0.05, 0.25, 0.5)  # params.yaml canary.steps up to the one whose pass promotes
Observe = Callable[[np.random.Generator, int, int], np.ndarray]


def accuracy_of(champion: float, canary: float) -> Observe:
    """Counts added by `mine` canary and `theirs` champion labelled answers."""
    def observe(rng: np.random.Generator, mine: int, theirs: int) -> np.ndarray:
        return np.array([mine, rng.binomial(mine, canary), theirs, rng.binomial(theirs, champion)])
    return observe


def errors_of(ratio: float) -> Observe:
    """Sums added by absolute errors |N(0, ratio)| (canary) and |N(0, 1)| (champion)."""
    def observe(rng: np.random.Generator, mine: int, theirs: int) -> np.ndarray:
        canary, champion = np.abs(rng.normal(0, ratio, mine)), np.abs(rng.normal(0, 1, theirs))
        return np.array([mine, canary.sum(), (canary**2).sum(),
                         theirs, champion.sum(), (champion**2).sum()])
    return observe


def one_canary(rng: np.random.Generator, observe: Observe, args: argparse.Namespace) -> str:
    """How the canary ends: rolled back, promoted or holding."""
    regression = args.task == "regression"
    live_type, bound = (LiveErrors, args.increase) if regression else (LiveAccuracy, args.drop)
    breach, excess = (mae_breach, mae_excess) if regression else (metric_breach, metric_excess)
    counts = np.zeros(6 if regression else 4)
    for share in SHARES:
        per = (1 - share) / share
        for seen in range(args.look, args.max_records + 1, args.look):
            counts += observe(rng, rng.binomial(args.look, args.labelled),
                              rng.binomial(round(args.look * per), args.labelled))
            live = live_type(*(v.item() for v in counts))
            rows = min(live.canary_rows, live.champion_rows)
            if breach(live, bound, args.min_rows) is not None:
                return "rolled back"
            waits = args.require_labels and share == SHARES[-1] and rows < args.min_rows
            if seen >= args.min_records and excess(live, bound, args.min_rows) is None \
                    and not waits:
                break
        else:
            return "holding"
    return "promoted"


def scenario(label: str, champion: float, observe: Observe, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{label} {champion}".encode()))
    ends = [one_canary(rng, observe, args) for _ in range(args.trials)]
    cells = [f"{ends.count(end) / args.trials:.1%}"
             for end in ("rolled back", "promoted", "holding")]
    print(f"| {label:<28} | {champion:g} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["classification", "regression"],
                        default="classification")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--drop", type=float, default=0.02, help="canary.max_metric_drop")
    parser.add_argument("--increase", type=float, default=0.05, help="canary.max_mae_increase")
    parser.add_argument("--look", type=int, default=10, help="canary requests per evaluation")
    parser.add_argument("--min-records", type=int, default=100, help="canary.min_records")
    parser.add_argument("--min-rows", type=int, default=200, help="monitor.min_labelled_rows")
    parser.add_argument("--max-records", type=int, default=2000)
    parser.add_argument("--labelled", type=float, default=1.0, help="share of requests labelled")
    parser.add_argument("--require-labels", action="store_true", help="canary.require_labels")
    args = parser.parse_args()
    print(f"{args.trials} canaries each; {args.task}; steps {SHARES}; ALPHA {ALPHA}; "
          f"max_metric_drop {args.drop}; max_mae_increase {args.increase}; min_labelled_rows "
          f"{args.min_rows}; labelled {args.labelled:.0%}; require_labels {args.require_labels}")
    if args.task == "regression":
        print("| canary | champion sigma | rolled back | promoted | holding |")
        print("|---|---|---:|---:|---:|")
        for label, ratio in (("as accurate (false)", 1.0), ("exactly at the bound",
                             1 + args.increase), ("MAE 10% over", 1.10), ("MAE 25% over", 1.25)):
            scenario(label, 1.0, errors_of(ratio), args)
        return
    print("| canary | champion accuracy | rolled back | promoted | holding |")
    print("|---|---|---:|---:|---:|")
    for champion in (0.8, 0.95):
        for label, drop in (("as accurate (false)", 0.0), ("exactly at the bound", args.drop),
                            ("5 points less accurate", 0.05),
                            ("10 points less accurate", 0.10)):
            scenario(label, champion, accuracy_of(champion, champion - drop), args)


if __name__ == "__main__":
    main()
