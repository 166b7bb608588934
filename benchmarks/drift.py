"""Drift over a large inference log: Flywheel's pyarrow/numpy pass against plain pandas.

Writes a log of N rows (default 1,000,000: rows of the default table drawn with replacement,
in files of 50,000 as the service rolls them), profiles the table, then times the whole drift
computation from the files on disk: read the window (time and model version filter), bin every
feature and the score, distances, calibrated alarm levels. The baseline reads with pandas and
bins with `pd.cut` / `value_counts` / `Series.quantile`, then uses the same distance functions.
Prints rows/s of each and the ratio; both run in this process, best of `--repeat`.

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--repeat 3]
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
    """The same metrics, computed the way a pandas user would."""
    from flywheel.monitoring.distances import (
        calibrated_threshold,
        js_distance,
        psi,
        quantile_grid,
        shares,
        wasserstein_normalized,
    )

    columns = ["time", "model_version", *profile["features"], "probability"]
    frame = pd.concat(pd.read_parquet(f, columns=columns) for f in sorted(folder.glob("*.parquet")))
    frame = frame[(frame["time"] >= since) & (frame["model_version"] == "1")]
    rng = np.random.default_rng(cfg.seed)
    out = {}
    references = {**profile["features"], "probability": {"kind": "numeric", **profile["score"]}}
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
        level = calibrated_threshold(
            reference, len(frame), resamples=cfg.resamples, k=cfg.k, floor=cfg.min_psi, rng=rng
        )
        out[name] = (
            float(psi(reference, current)),
            float(js_distance(reference, current)),
            extra,
            level,
        )
    return out


def flywheel_drift(folder: Path, profile: dict[str, Any], cfg: Any, since: datetime) -> dict:
    from flywheel.monitoring.drift import SCORE_COLUMN, window_drift
    from flywheel.monitoring.logread import read_log

    table = read_log(folder, [*profile["features"], SCORE_COLUMN], since=since, version="1")
    features, score = window_drift(profile, table, cfg)
    return {**features, "probability": score}


def best_seconds(run: Any, repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds (CPU says more on a machine others are loading too)."""
    times = []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - started, time.process_time() - cpu))
    return min(t[0] for t in times), min(t[1] for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from flywheel.config import load_params
    from flywheel.data.io import feature_frame, read_table
    from flywheel.data.spec import load_spec
    from flywheel.monitoring.profile import build_profile

    params = load_params(ROOT / "params.yaml")
    spec = load_spec(ROOT / params.data.spec)
    reference = feature_frame(spec, read_table(ROOT / spec.path))
    profile = build_profile(spec, reference, churn_score(reference), params.monitor.psi_bins)
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
