"""Bounded one-hot against native categoricals for HistGradientBoosting, on a wide column.

The table is the default one resampled to N rows (327k by default, the size of the user table
in issue 9) with `zip_code`, a categorical of 4,000 levels, added as `benchmarks/scale.py`
makes it. Every variant takes featurize's stratified split and is scored on the same test rows:

    one-hot  the `hgb` candidate (params.yaml's settings, early stopping on the valid split) on
             Flywheel's one-hot encoding: numerics imputed and scaled, `featurize.max_categories`
             columns per categorical, rarer levels in one shared column
    native   the same candidate on Flywheel's native encoding (what it trains on): numerics as
             they are, each categorical one column of codes, at most 255 levels, rarer and unseen
             levels sharing the last
    bare     pandas categoricals (254 most frequent levels, the rest "other") and scikit-learn's
             default HistGradientBoostingClassifier, as `scale.py`'s bare script

Each variant runs in a fresh process so its peak resident memory is its own. Prints encode+fit
seconds, peak MiB and test ROC-AUC per variant, and the ratio lines.

    .venv/bin/python benchmarks/categoricals.py [--rows 327000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from project_copy import REPO  # benchmarks/ is the script's folder
from scale import make_table


def _split(table: Path) -> tuple[Any, dict[str, Any], Any]:
    """Spec, featurize's split of the table, and params (as the pipeline reads them)."""
    import pandas as pd

    from flywheel.config import load_params
    from flywheel.data.infer import infer_spec
    from flywheel.data.io import feature_frame, target_vector
    from flywheel.features.split import content_rule, split_frame

    frame = pd.read_parquet(table)
    spec = infer_spec(frame, target="churn", path=table, name="wide")
    params = load_params(REPO / "params.yaml")
    y = target_vector(spec, frame)
    table = feature_frame(spec, frame).assign(y=y)
    parts = split_frame(table, y, content_rule(table, params.featurize, copies=True))
    return spec, parts, params


def flywheel_hgb(table: Path, kind: str) -> dict[str, float]:
    """The `hgb` candidate as the train step fits it, on the `kind` encoding."""
    from flywheel.features.encoding import fit_encoding
    from flywheel.training.candidates import Matrices, train_candidates

    spec, parts, params = _split(table)
    train, valid, test = parts["train"], parts["valid"], parts["test"]
    started = time.perf_counter()
    encoding = fit_encoding(spec, train, kind, params.featurize.max_categories)  # type: ignore[arg-type]
    data = Matrices(
        encoding.transform(train), encoding.transform(valid), encoding.categorical_columns
    )
    cfg = params.train.model_copy(update={"candidates": ["hgb"]})
    with tempfile.TemporaryDirectory() as scratch:
        (fit,) = train_candidates(
            cfg, {"native": data}, train["y"].to_numpy(), valid["y"].to_numpy(), Path(scratch)
        )
    seconds = time.perf_counter() - started
    proba = fit.estimator.predict_proba(encoding.transform(test))[:, 1]
    return _result(seconds, test["y"], proba, columns=encoding.width)


def bare(table: Path) -> dict[str, float]:
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    spec, parts, params = _split(table)
    train, test = parts["train"], parts["test"]
    started = time.perf_counter()
    levels = {f.name: train[f.name].value_counts().index[:254] for f in spec.categorical}

    def categories(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.drop(columns="y")
        for name, kept in levels.items():
            values = out[name].where(out[name].isin(kept), "other")
            out[name] = pd.Categorical(values, categories=[*kept, "other"])
        return out

    model = HistGradientBoostingClassifier(random_state=0).fit(categories(train), train["y"])
    seconds = time.perf_counter() - started
    proba = model.predict_proba(categories(test))[:, 1]
    return _result(seconds, test["y"], proba, columns=len(spec.features))


def _result(seconds: float, y: Any, proba: Any, columns: int) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {
        "fit_s": seconds,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "roc_auc": float(roc_auc_score(y, proba)),
        "columns": columns,
    }


VARIANTS = {
    "one-hot": lambda table: flywheel_hgb(table, "one_hot"),
    "native": lambda table: flywheel_hgb(table, "native"),
    "bare": bare,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=327_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(VARIANTS[args.variant](args.table)))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="flywheel-categoricals-") as workdir:
        table = Path(workdir) / "wide.parquet"
        make_table(args.rows, table, seed=args.seed)
        for name in VARIANTS:
            command = [sys.executable, __file__, "--variant", name, "--table", str(table)]
            lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[name] = r = json.loads(lines.strip().splitlines()[-1])
            print(
                f"{name:>8}: {r['columns']:>4} columns, encode+fit {r['fit_s']:6.1f} s, "
                f"peak {r['peak_mib']:7,.0f} MiB, test ROC-AUC {r['roc_auc']:.4f}",
                flush=True,
            )
    nat = results["native"]
    for other in ("one-hot", "bare"):
        r = results[other]
        print(
            f"ratio native/{other}: fit time {nat['fit_s'] / r['fit_s']:.2f}x, "
            f"peak memory {nat['peak_mib'] / r['peak_mib']:.2f}x, "
            f"ROC-AUC {nat['roc_auc'] - r['roc_auc']:+.4f}"
        )


if __name__ == "__main__":
    main()
