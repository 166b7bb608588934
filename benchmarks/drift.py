"""Drift over a large inference log: Flywheel's pyarrow/numpy pass against plain pandas.

Writes a log of N rows (default 1,000,000: rows of the default table drawn with replacement,
in files of 50,000 as the service rolls them), profiles the table, then times the whole drift
computation from the files on disk: read the window (time and model version filter), bin every
feature and the score, distances, calibrated alarm levels. The baseline reads with pandas and
bins with `pd.cut` / `value_counts` / `Series.quantile`, then uses the same distance functions.
Prints rows/s of each and the ratio; both run in this process, best of `--repeat`.

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--repeat 3]

With `--rates`, instead: the decision rule's simulated error rates (min_psi 0), the same
simulation as tests/unit/test_monitoring_drift_rule.py with more trials: false alarms per
feature with no drift, and how often a +0.2 sd shift is caught.

    .venv/bin/python benchmarks/drift.py --rates [--trials 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.unit.test_monitoring_report import churn_score, write_log  # noqa: E402

FILE_ROWS = 50_000


def pandas_drift(folder: Path, profile: dict[str, Any], cfg: Any, since: datetime) -> dict:
    """The same metrics, computed the way a pandas user would (same null and Holm rule)."""
    from flywheel.monitoring.distances import (
        js_distance,
        psi,
        quantile_grid,
        shares,
        wasserstein_normalized,
    )
    from flywheel.monitoring.null import null_psi, p_value, resamples_for, window_bucket
    from flywheel.monitoring.verdict import holm

    columns = ["time", "model_version", *profile["features"], "probability"]
    frame = pd.concat(pd.read_parquet(f, columns=columns) for f in sorted(folder.glob("*.parquet")))
    frame = frame[(frame["time"] >= since) & (frame["model_version"] == "1")]
    out = {}
    references = {**profile["features"], "probability": {"kind": "numeric", **profile["score"]}}
    resamples = resamples_for(cfg.alpha / len(references), cfg.resamples)
    for name, ref in references.items():
        column = frame[name]
        if ref["kind"] == "numeric":
            bins = [-np.inf, *ref["edges"], np.inf]
            counts = pd.cut(column, bins, right=True).value_counts(sort=False).to_numpy()
            grid = column.dropna().quantile(quantile_grid(100)).to_numpy()
            extra = wasserstein_normalized(np.asarray(ref["quantiles"]), grid, ref["std"])
        else:
            seen = column.value_counts()
            known = seen.reindex(ref["categories"], fill_value=0).to_numpy()
            counts = np.append(known, seen.sum() - known.sum())
            extra = None
        counts = np.append(counts, column.isna().sum())
        current, reference = shares(counts), np.asarray(ref["shares"])
        value = float(psi(reference, current))
        null = null_psi(
            reference, ref.get("rows", profile["rows"]), window_bucket(len(frame)), resamples, 42
        )
        out[name] = [value, float(js_distance(reference, current)), extra, p_value(null, value)]
    rejected, _ = holm([v[3] for v in out.values()], cfg.alpha)
    return {name: (*v, bool(r)) for (name, v), r in zip(out.items(), rejected, strict=True)}


def flywheel_drift(folder: Path, profile: dict[str, Any], cfg: Any, since: datetime) -> dict:
    from flywheel.monitoring.drift import SCORE_COLUMN, window_drift
    from flywheel.monitoring.logread import read_log

    table = read_log(folder, [*profile["features"], SCORE_COLUMN], since=since, version="1")
    features, score, _ = window_drift(profile, table, cfg)
    return {**features, "probability": score}


def best_seconds(run: Any, repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds (CPU says more on a machine others are loading too); the
    null cache is emptied first, so each run calibrates from scratch."""
    from flywheel.monitoring.null import _null_psi

    times = []
    for _ in range(repeat):
        _null_psi.cache_clear()
        started, cpu = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - started, time.process_time() - cpu))
    return min(t[0] for t in times), min(t[1] for t in times)


def error_rates(trials: int) -> None:
    """False-alarm and detection rates of the drift rule, by simulation."""
    from tests.unit.test_monitoring_drift_rule import (
        FEW,
        STRICTEST,
        WINDOWS,
        ZIPF,
        categorical_p,
        numeric_p,
    )

    rng = np.random.default_rng(2025)
    levels = (STRICTEST, 0.01, 0.05)
    print(f"{trials} trials each; reference 5,000 rows; levels {levels}")
    for kind in ("numeric", "categorical (4 levels)", "zipf (3,000 levels)", "numeric +0.2 sd"):
        for rows in WINDOWS:
            if kind.startswith("numeric"):
                shift = 0.2 if "+" in kind else 0.0
                p = [numeric_p(rng, rows, shift, STRICTEST) for _ in range(trials)]
            else:
                population = FEW if kind.startswith("categorical") else ZIPF
                p = [categorical_p(rng, rows, population) for _ in range(trials)]
            flagged = [float(np.mean(np.asarray(p) <= a)) for a in levels]
            shown = " / ".join(f"{f:.3f}" for f in flagged)
            print(f"{kind:<24} window {rows:>7,}: flagged {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rates", action="store_true", help="simulated error rates instead")
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    if args.rates:
        error_rates(args.trials)
        return

    from flywheel.config import load_params
    from flywheel.data.io import feature_frame, read_table
    from flywheel.data.spec import load_spec
    from flywheel.monitoring.profile import build_profile

    params = load_params(ROOT / "params.yaml")
    spec = load_spec(ROOT / params.data.spec)
    reference = feature_frame(spec, read_table(ROOT / spec.path))
    profile = build_profile(spec, reference, churn_score(reference), params.monitor)
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    since = now - timedelta(hours=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "inference"
        for start in range(0, args.rows, FILE_ROWS):
            rows = reference.iloc[
                rng.integers(0, len(reference), min(FILE_ROWS, args.rows - start))
            ]
            write_log(folder, spec, rows.reset_index(drop=True), "1", now, prefix=f"b{start}")
        ours = best_seconds(
            lambda: flywheel_drift(folder, profile, params.monitor, since), args.repeat
        )
        theirs = best_seconds(
            lambda: pandas_drift(folder, profile, params.monitor, since), args.repeat
        )
        a = flywheel_drift(folder, profile, params.monitor, since)["monthly_charges"]["psi"]
        b = pandas_drift(folder, profile, params.monitor, since)["monthly_charges"][0]
    print(
        f"rows: {args.rows:,} in {args.rows // FILE_ROWS or 1} files, "
        f"{len(profile['features'])} features + score"
    )
    for label, (wall, cpu) in (("flywheel (pyarrow + numpy)", ours), ("plain pandas", theirs)):
        print(
            f"{label:<27} wall {wall:.3f} s = {args.rows / wall:,.0f} rows/s; "
            f"CPU {cpu:.3f} s = {args.rows / cpu:,.0f} rows/CPU-s"
        )
    print(
        f"ratio flywheel/pandas speed: wall {theirs[0] / ours[0]:.2f}x, CPU "
        f"{theirs[1] / ours[1]:.2f}x  (same PSI: {a:.6f} vs {b:.6f})"
    )


if __name__ == "__main__":
    main()
