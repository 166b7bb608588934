"""Bounded one-hot against native categoricals for HistGradientBoosting, on a wide column.

The table is the default one resampled to N rows (327k by default, the size of the user table
in issue 9) with `zip_code`, a categorical of 4,000 levels, added as `benchmarks/scale.py`
makes it. Both variants take the same stratified split (featurize's) and the HGB settings in
params.yaml, and are scored on the same test rows:

    one-hot  Flywheel's transformer (impute, scale, one-hot with `featurize.max_categories`
             columns per categorical, the rest in one infrequent column), dense
    native   numerics as they are; each categorical as ordinal codes of its 254 most frequent
             training levels, every other level (and unseen ones) in code 254, blanks NaN;
             `categorical_features` marks them

Each variant runs in a fresh process so its peak resident memory is its own. Prints fit
seconds (transform + fit), peak MiB and test ROC-AUC per variant, and native/one-hot ratios.

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

NATIVE_LEVELS = 254  # HGB takes at most 255 categories; the last code is the shared bucket


def _split(table: Path) -> tuple[Any, dict[str, Any], Any]:
    """Spec, featurize's split of the table, and params (as the pipeline reads them)."""
    import pandas as pd

    from flywheel.config import load_params
    from flywheel.data.infer import infer_spec
    from flywheel.data.io import feature_frame, target_vector
    from flywheel.features.split import split_frame

    frame = pd.read_parquet(table)
    spec = infer_spec(frame, target="churn", path=table, name="wide")
    params = load_params(REPO / "params.yaml")
    y = target_vector(spec, frame)
    parts = split_frame(feature_frame(spec, frame).assign(y=y), y, params.featurize)
    return spec, parts, params


def one_hot(table: Path) -> dict[str, float]:
    from flywheel.features.transformer import fit_transformer

    spec, parts, params = _split(table)
    train, test = parts["train"], parts["test"]
    started = time.perf_counter()
    transformer = fit_transformer(spec, train.drop(columns="y"), params.featurize.max_categories)
    X = transformer.transform(train.drop(columns="y"))
    model = _hgb(params).fit(X, train["y"])
    seconds = time.perf_counter() - started
    proba = model.predict_proba(transformer.transform(test.drop(columns="y")))[:, 1]
    return _result(seconds, test["y"], proba, columns=X.shape[1])


def native(table: Path) -> dict[str, float]:
    import numpy as np
    import pandas as pd

    spec, parts, params = _split(table)
    train, test = parts["train"], parts["test"]
    started = time.perf_counter()
    levels = {f.name: train[f.name].value_counts().index[:NATIVE_LEVELS] for f in spec.categorical}

    def codes(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.drop(columns="y").copy()
        for name, kept in levels.items():
            code = pd.Index(kept).get_indexer(out[name]).astype("float64")
            code[code < 0] = NATIVE_LEVELS
            code[out[name].isna().to_numpy()] = np.nan
            out[name] = code
        return out

    X = codes(train)
    mask = [name in levels for name in X.columns]
    model = _hgb(params, categorical=mask).fit(X, train["y"])
    seconds = time.perf_counter() - started
    proba = model.predict_proba(codes(test))[:, 1]
    return _result(seconds, test["y"], proba, columns=X.shape[1])


def _hgb(params: Any, categorical: Any = None) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    hgb = params.train.hgb
    return HistGradientBoostingClassifier(
        learning_rate=hgb.learning_rate,
        max_iter=hgb.max_iter,
        max_leaf_nodes=hgb.max_leaf_nodes,
        l2_regularization=hgb.l2_regularization,
        categorical_features=categorical,
        random_state=params.train.seed,
    )


def _result(seconds: float, y: Any, proba: Any, columns: int) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {
        "fit_s": seconds,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "roc_auc": float(roc_auc_score(y, proba)),
        "columns": columns,
    }


VARIANTS = {"one-hot": one_hot, "native": native}


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
            results[name] = json.loads(lines.strip().splitlines()[-1])
            r = results[name]
            print(
                f"{name:>8}: {r['columns']:>4} columns, fit {r['fit_s']:6.1f} s, "
                f"peak {r['peak_mib']:7,.0f} MiB, test ROC-AUC {r['roc_auc']:.4f}",
                flush=True,
            )
    hot, nat = results["one-hot"], results["native"]
    print(
        f"ratio native/one-hot: fit time {nat['fit_s'] / hot['fit_s']:.2f}x, "
        f"peak memory {nat['peak_mib'] / hot['peak_mib']:.2f}x, "
        f"ROC-AUC {nat['roc_auc'] - hot['roc_auc']:+.4f}"
    )


if __name__ == "__main__":
    main()
