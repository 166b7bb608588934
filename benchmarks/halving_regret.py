"""How often successive halving drops the candidate that full fits would have picked.

Simulation on synthetic binary tasks that range from linear to strongly non-linear (the class
leans on a linear score, a product of two features, a threshold, in random proportions, with
label noise), so that each of logreg, hgb and mlp wins some of them. Per task: every candidate
fitted on all training rows (what the search would pick without halving), and the search
(training/rungs.py) with params.yaml's rule (factor, margin, max_cost_ratio) scaled to the table
(`--min-rows`; `--max-cost-ratio` another ratio, `null` none). Reported: how often the two pick
differently, the valid ROC-AUC lost when they do, and the seconds each spent (one process, one
fit at a time, so the two are comparable).

    .venv/bin/python benchmarks/halving_regret.py [--tasks 30] [--rows 12000] [--min-rows 1000]
        [--max-cost-ratio 3|null]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from project_copy import REPO  # benchmarks/ is the script's folder


def task(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A table of `rows` x 8 features whose class mixes three shapes in random proportions."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 8))
    linear, product, step = rng.dirichlet([1.0, 1.0, 1.0])
    score = (linear * (X[:, :4] @ rng.normal(size=4)) + 3 * product * X[:, 4] * X[:, 5]
             + 3 * step * np.sign(X[:, 6] - 0.3))
    noisy = score + rng.logistic(scale=0.6 + rng.uniform(0, 0.6), size=rows)
    return X, (noisy > np.median(noisy)).astype(np.int64)


class Outcome(NamedTuple):
    best: str  # full fits' pick
    picked: str  # the search's
    lost: float  # valid ROC-AUC the search's pick lost
    full_s: float  # seconds of the full fits
    search_s: float  # seconds of the search
    costly: int  # candidates the cost rule stopped


def one(seed: int, rows: int, min_rows: int, ratio: dict[str, float | None],
        workdir: Path) -> Outcome:
    """One task: full fits against the search (`ratio`: its max_cost_ratio, if not params')."""
    from flywheel.config import load_params
    from flywheel.training.candidates import Matrices, select_best, train_candidates
    from flywheel.training.rungs import search_candidates

    X, y = task(seed, rows)
    cut = int(rows * 0.75)
    inputs = dict.fromkeys(("one_hot", "native"), Matrices(X[:cut], X[cut:]))
    base = load_params(REPO / "params.yaml").train
    mlp = base.mlp.model_copy(update={"max_epochs": 15, "device": "cpu"})
    params = base.model_copy(update={"seed": seed, "mlp": mlp, "workers": 1})
    started = time.perf_counter()
    full = train_candidates(params, inputs, y[:cut], y[cut:], workdir)
    full_s, started = time.perf_counter() - started, time.perf_counter()
    halving = params.halving.model_copy(update={"min_rows": min_rows} | ratio)
    searched = search_candidates(params.model_copy(update={"halving": halving}), inputs,
                                 y[:cut], y[cut:], workdir)
    search_s = time.perf_counter() - started
    best = select_best(full, "roc_auc")
    picked = select_best(searched.finalists, "roc_auc")
    scores = {r.name: r.valid_metrics["roc_auc"] for r in full}
    costly = sum(r.compute["stopped"].startswith("max_cost_ratio") for r in searched.results)
    return Outcome(best.name, picked.name, scores[best.name] - scores[picked.name], full_s,
                   search_s, costly)


def ratio_arg(text: str) -> dict[str, float | None]:
    """--max-cost-ratio: a number > 0, null (no cost limit) or params (params.yaml's)."""
    if text == "params":
        return {}
    if text.lower() in ("null", "none"):
        return {"max_cost_ratio": None}
    if float(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text}: expected a number > 0 or null")
    return {"max_cost_ratio": float(text)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--min-rows", type=int, default=1_000)
    parser.add_argument("--max-cost-ratio", type=ratio_arg, default="params",
                        help="train.halving.max_cost_ratio, or null (default: params.yaml's)")
    args = parser.parse_args()
    outcomes = []
    with tempfile.TemporaryDirectory() as workdir:
        one(0, 1_000, 1_000, args.max_cost_ratio, Path(workdir))  # imports and first-fit costs
        for seed in range(args.tasks):
            o = one(seed, args.rows, args.min_rows, args.max_cost_ratio, Path(workdir))
            outcomes.append(o)
            print(f"task {seed:>3}: full fits pick {o.best:<6} halving picks {o.picked:<6} "
                  f"valid ROC-AUC lost {o.lost:.4f}; seconds full {o.full_s:5.1f}, halving "
                  f"{o.search_s:5.1f}; stopped by cost {o.costly}", flush=True)
    summary(outcomes)


def summary(outcomes: list[Outcome]) -> None:
    missed = [o.lost for o in outcomes if o.best != o.picked]
    wins = {name: sum(o.best == name for o in outcomes) for name in ("logreg", "hgb", "mlp")}
    print(f"{len(outcomes)} tasks (full-fit winners {wins}): halving picked another candidate in "
          f"{len(missed)} ({len(missed) / len(outcomes):.0%}); valid ROC-AUC lost then: mean "
          f"{np.mean(missed) if missed else 0:.4f}, max {max(missed, default=0):.4f}")
    full, search = sum(o.full_s for o in outcomes), sum(o.search_s for o in outcomes)
    print(f"seconds: full fits {full:.1f}, halving {search:.1f} ({search / full:.2f}x); the cost "
          f"rule stopped a candidate in {sum(o.costly > 0 for o in outcomes)} tasks")


if __name__ == "__main__":
    main()
