"""How often successive halving drops the candidate that full fits would have picked.

Simulation on synthetic binary tasks that range from linear to strongly non-linear (the class
leans on a linear score, a product of two features, a threshold, in random proportions, with
label noise), so that each of logreg, hgb and mlp wins some of them. Per task: every candidate
fitted on all training rows (what the search would pick without halving), and the search
(training/rungs.py) with params.yaml's rule (factor, margin) scaled to the table (`--min-rows`).
Reported: how often the two pick differently, and the valid ROC-AUC lost when they do.

    .venv/bin/python benchmarks/halving_regret.py [--tasks 30] [--rows 12000] [--min-rows 1000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

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


def one(seed: int, rows: int, min_rows: int, workdir: Path) -> tuple[str, str, float]:
    """(full fits' pick, the search's pick, valid ROC-AUC the search's pick lost)."""
    from flywheel.config import load_params
    from flywheel.training.candidates import Matrices, select_best, train_candidates
    from flywheel.training.rungs import search_candidates

    X, y = task(seed, rows)
    cut = int(rows * 0.75)
    inputs = dict.fromkeys(("one_hot", "native"), Matrices(X[:cut], X[cut:]))
    base = load_params(REPO / "params.yaml").train
    mlp = base.mlp.model_copy(update={"max_epochs": 15, "device": "cpu"})
    params = base.model_copy(update={"seed": seed, "mlp": mlp, "workers": 1})
    full = train_candidates(params, inputs, y[:cut], y[cut:], workdir)
    halving = params.halving.model_copy(update={"min_rows": min_rows})
    searched = search_candidates(params.model_copy(update={"halving": halving}), inputs,
                                 y[:cut], y[cut:], workdir)
    best = select_best(full, "roc_auc")
    picked = select_best(searched.finalists, "roc_auc")
    scores = {r.name: r.valid_metrics["roc_auc"] for r in full}
    return best.name, picked.name, scores[best.name] - scores[picked.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--min-rows", type=int, default=1_000)
    args = parser.parse_args()
    outcomes = []
    with tempfile.TemporaryDirectory() as workdir:
        for seed in range(args.tasks):
            best, picked, lost = one(seed, args.rows, args.min_rows, Path(workdir))
            outcomes.append((best, picked, lost))
            print(f"task {seed:>3}: full fits pick {best:<6} halving picks {picked:<6} "
                  f"valid ROC-AUC lost {lost:.4f}", flush=True)
    missed = [lost for best, picked, lost in outcomes if best != picked]
    wins = {name: sum(best == name for best, _, _ in outcomes) for name in ("logreg", "hgb", "mlp")}
    print(f"{len(outcomes)} tasks (full-fit winners {wins}): halving picked another candidate in "
          f"{len(missed)} ({len(missed) / len(outcomes):.0%}); valid ROC-AUC lost then: mean "
          f"{np.mean(missed) if missed else 0:.4f}, max {max(missed, default=0):.4f}")


if __name__ == "__main__":
    main()
