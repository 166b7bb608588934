"""The whole pipeline on 1M- and 5M-row tables against a bare pandas + scikit-learn script.

Each table is the default table resampled with noise on the numbers, plus `zip_code`, a
categorical with 4,000 levels (a long tail, as postcodes have) that carries some signal; it is
written as Parquet. Platform: `flywheel run --data TABLE --target churn` in a throwaway copy of
the project (spec inferred, Great Expectations, featurize, train, evaluate, MLflow, the gate),
training the `hgb` candidate only so both sides fit the same model. Bare: pandas reads the
Parquet file, the same stratified split, and scikit-learn's default HistGradientBoosting with
native categoricals (codes past 255 levels share one). Both run as fresh processes; peak
memory is the largest resident set of the whole process tree, sampled every 0.2 s.

    .venv/bin/python benchmarks/scale.py [--rows 1000000 5000000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from project_copy import REPO, copy_project  # benchmarks/ is the script's folder

ZIP_LEVELS = 4000
LAST_PEAKS: dict[str, float] = {}  # the last measured run's peaks: rss, pss, largest (MiB)


def make_table(rows: int, path: Path, seed: int = 0) -> None:
    """The default table resampled to `rows`, numbers jittered, and a 4,000-level column."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    base = pd.read_csv(REPO / "data" / "wa_churn.csv", skipinitialspace=True)
    base = base.drop(columns="rownames")
    frame = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    for column in ("tenure", "monthly_charges", "total_charges"):
        values = pd.to_numeric(frame[column], errors="coerce")
        noise = rng.normal(0, 0.05 * values.std(), rows)
        frame[column] = (values + noise).clip(lower=0)
    # Zipf-like levels; churners lean towards the first half of the levels.
    weights = 1 / np.arange(1, ZIP_LEVELS + 1) ** 0.8
    level = rng.choice(ZIP_LEVELS, rows, p=weights / weights.sum())
    churned = (frame["churn"] == "Yes").to_numpy()
    shifted = np.where(churned & (rng.random(rows) < 0.3), level // 2, level)
    frame["zip_code"] = pd.Series(shifted).map(lambda i: f"Z{i:04d}")
    frame.to_parquet(path, index=False)


def peak_rss_run(command: list[str], **kwargs: object) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of the command and all its children."""
    wall, samples = rss_samples(command, **kwargs)
    return wall, max((s[1] for s in samples), default=0.0)


def tree_memory(root: Any) -> tuple[float, float, float]:
    """MiB of a process tree now: resident summed over its processes (shared library pages
    counted once per process), proportional (PSS: a page shared by n processes counts 1/n, so
    the sum is what the tree holds), and the largest single process's resident set."""
    rss = pss = largest = 0.0
    for process in [root, *root.children(recursive=True)]:
        info = process.memory_full_info()
        rss, pss, largest = rss + info.rss, pss + info.pss, max(largest, info.rss)
    return rss / 2**20, pss / 2**20, largest / 2**20


def rss_samples(
    command: list[str], **kwargs: object
) -> tuple[float, list[tuple[float, float, float, float]]]:
    """Wall seconds, and every 0.2 s (seconds since start, summed resident MiB, summed PSS MiB,
    largest process's resident MiB) of the process tree (`tree_memory`)."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command, **kwargs)  # type: ignore[call-overload]
    root = psutil.Process(process.pid)
    samples: list[tuple[float, float, float, float]] = []
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):  # a process gone mid-sample: skip the sample
            samples.append((time.perf_counter() - started, *tree_memory(root)))
        time.sleep(0.2)
    if process.returncode != 0:
        log = kwargs.get("stdout")
        tail = Path(log.name).read_text()[-3000:] if hasattr(log, "name") else ""
        raise RuntimeError(f"{command[:3]} exited with {process.returncode}\n{tail}")
    LAST_PEAKS.update(rss=max((s[1] for s in samples), default=0.0),
                      pss=max((s[2] for s in samples), default=0.0),
                      largest=max((s[3] for s in samples), default=0.0))
    return time.perf_counter() - started, samples


def step_peaks(
    steps: list[dict[str, Any]], samples: list[tuple[float, float, float, float]], wall: float
) -> dict[str, float]:
    """Peak MiB per step, approximately: the steps ran one after another and the run's report
    gives only their durations, so their windows are laid back from the end of the run (the
    time before the first step, e.g. the temporary Prefect server, is left to none)."""
    peaks: dict[str, float] = {}
    end = wall
    for step in reversed(steps):
        start = end - step["seconds"]
        inside = [rss for at, rss, *_ in samples if start <= at <= end]
        peaks[step["step"]] = round(max(inside, default=0.0))
        end = start
    return dict(reversed(peaks.items()))


def bare(table: Path, target: str = "churn") -> None:
    """Read, split as featurize does, fit default HGB with native categoricals, score test.
    The positive class is the target's last level in sorted order ("Yes" of churn)."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from flywheel.config import load_params
    from flywheel.features.split import content_rule, split_frame

    frame = pd.read_parquet(table)
    labels = frame.pop(target).astype(str)
    y = (labels == sorted(labels.unique())[-1]).to_numpy(dtype=np.int64)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            top = frame[column].value_counts().index[:254]  # HGB takes at most 255 levels
            frame[column] = pd.Categorical(frame[column].where(frame[column].isin(top), "other"))
    params = load_params(REPO / "params.yaml").featurize
    table = frame.assign(y=y)
    parts = split_frame(table, y, content_rule(table, params, copies=True))  # as featurize
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(parts["train"].drop(columns="y"), parts["train"]["y"])
    proba = model.predict_proba(parts["test"].drop(columns="y"))[:, 1]
    print(json.dumps({"roc_auc": float(roc_auc_score(parts["test"]["y"], proba))}))


def measure_bare(table: Path, workdir: Path, target: str = "churn") -> tuple[float, float, float]:
    """The bare script as a fresh process: wall s, peak MiB, test ROC-AUC."""
    out = workdir / "bare.json"
    with out.open("w") as fh:
        wall, peak = peak_rss_run(
            [sys.executable, __file__, "--bare", str(table), "--target", target], stdout=fh
        )
    return wall, peak, json.loads(out.read_text().strip().splitlines()[-1])["roc_auc"]


def platform(table: Path, workdir: Path, target: str = "churn",
             train: dict[str, Any] | None = None) -> tuple[float, float, float]:
    """`flywheel run --data` in a copy of the project, `train` params changed as given (by
    default the `hgb` candidate alone): wall s, peak MiB, test ROC-AUC."""
    import yaml

    project, env = copy_project(workdir)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update({"candidates": ["hgb"]} if train is None else train)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    report = workdir / "report.json"
    command = [str(Path(sys.executable).parent / "flywheel"), "run", "--data", str(table)]
    with (workdir / "run.log").open("w") as log:  # read it when the run fails
        wall, samples = rss_samples(
            [*command, "--target", target, "--report", str(report)],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    peak = max((s[1] for s in samples), default=0.0)
    steps = json.loads(report.read_text())["steps"]
    peaks = step_peaks(steps, samples, wall)
    print(f"  {'step':<10} {'seconds':>8} {'peak MiB':>9}  (peak: approximate window)")
    for s in steps:
        print(f"  {s['step']:<10} {s['seconds']:>8.1f} {peaks[s['step']]:>9,.0f}")
    print(f"  {'before':<10} {wall - sum(s['seconds'] for s in steps):>8.1f}  (start-up, spec)")
    evaluate = next(s for s in steps if s["step"] == "evaluate")
    return wall, peak, evaluate["summary"]["roc_auc"]


def measure(rows: int, workdir: Path) -> dict[str, float]:
    table = workdir / f"scale_{rows}.parquet"
    make_table(rows, table)
    bare_wall, bare_peak, bare_auc = measure_bare(table, workdir)
    wall, peak, auc = platform(table, workdir / f"run_{rows}")
    return {
        "rows": rows,
        "wall": wall,
        "peak_mib": peak,
        "roc_auc": auc,
        "bare_wall": bare_wall,
        "bare_peak_mib": bare_peak,
        "bare_roc_auc": bare_auc,
    }


TARGETS = {"time": 3.0, "memory": 3.0, "growth": 5.5}  # issue 9's goals: at most this ratio


def ratio_lines(result: dict[str, float]) -> list[str]:
    """Flywheel against bare at one size: time, memory, ROC-AUC, each with its target."""
    time_x = result["wall"] / result["bare_wall"]
    memory_x = result["peak_mib"] / result["bare_peak_mib"]
    auc_gain = result["roc_auc"] - result["bare_roc_auc"]
    rows = f"{result['rows']:>9,}"
    return [
        f"{rows} ratio time   {time_x:6.2f}x  target <= {TARGETS['time']}x  "
        f"{_met(time_x <= TARGETS['time'])}",
        f"{rows} ratio memory {memory_x:6.2f}x  target <= {TARGETS['memory']}x  "
        f"{_met(memory_x <= TARGETS['memory'])}",
        f"{rows} ROC-AUC gain {auc_gain:+.4f}   target >= 0      {_met(auc_gain >= 0)}",
    ]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target", default="churn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare(args.bare, args.target)
        return
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for rows in args.rows:
            result = measure(rows, Path(workdir))
            results.append(result)
            print(
                f"{rows:>9,} rows: flywheel {result['wall']:.1f} s, {result['peak_mib']:,.0f} MiB,"
                f" ROC-AUC {result['roc_auc']:.4f} | bare {result['bare_wall']:.1f} s, "
                f"{result['bare_peak_mib']:,.0f} MiB, ROC-AUC {result['bare_roc_auc']:.4f}",
                flush=True,
            )
            print("\n".join(ratio_lines(result)), flush=True)
    if len(results) > 1:
        first, last = results[0], results[-1]
        growth = last["wall"] / first["wall"]
        print(
            f"growth {last['rows'] / first['rows']:.0f}x rows: flywheel time {growth:.2f}x "
            f"(target <= {TARGETS['growth']}x, {_met(growth <= TARGETS['growth'])}), "
            f"bare time {last['bare_wall'] / first['bare_wall']:.2f}x"
        )


if __name__ == "__main__":
    main()
