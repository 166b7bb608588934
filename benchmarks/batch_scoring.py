"""`flywheel predict` against a bare pandas + pyfunc script on the same file, same model.

Trains a small champion into a temp MLflow store (as the serving tests do), writes a Parquet
of N rows resampled from the default table, then times, in this process:

    bare      pd.read_parquet -> mlflow.pyfunc.load_model(...).predict -> DataFrame.to_parquet
    flywheel  flywheel.batch.score.score_file (spec checks, chunks, lineage columns, rejects)

Model loading is inside both timings. Prints rows/s for each and the ratio flywheel/bare.

    .venv/bin/python benchmarks/batch_scoring.py [--rows 1000000] [--chunk-rows 200000]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.serving.conftest import _train_and_log  # noqa: E402

logger = logging.getLogger("benchmarks.batch_scoring")


def bare(source: Path, out: Path, model_uri: str) -> float:
    import mlflow.pyfunc

    started = time.perf_counter()
    frame = pd.read_parquet(source)
    answer = mlflow.pyfunc.load_model(model_uri).predict(frame)
    frame.assign(
        prediction=answer["prediction"].to_numpy(), probability=answer["probability"].to_numpy()
    ).to_parquet(out)
    return time.perf_counter() - started


def flywheel(source: Path, out: Path, tmp: Path, uri: str, name: str, chunk_rows: int) -> float:
    from flywheel.batch.score import make_job, score_file
    from flywheel.settings import settings

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["promote"]["model_name"] = name
    params["predict"]["chunk_rows"] = chunk_rows
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    os.environ.update(
        FLYWHEEL_ROOT=str(ROOT),
        FLYWHEEL_PARAMS_FILE=str(tmp / "params.yaml"),
        FLYWHEEL_TRACKING_URI=uri,
    )
    current = settings()
    started = time.perf_counter()
    summary = score_file(current, make_job(current, source, out))
    elapsed = time.perf_counter() - started
    assert summary["rejected"] == 0, summary
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="flywheel-batch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "registry").mkdir()
        registry = _train_and_log(tmp / "registry")
        registry.register(commit="bench", data_md5="bench")
        table = pd.read_csv(ROOT / "data" / "wa_churn.csv")
        source = tmp / "big.parquet"
        table.sample(args.rows, replace=True, random_state=0).to_parquet(source, index=False)
        import mlflow

        mlflow.set_tracking_uri(registry.uri)
        bare(source, tmp / "warm.parquet", f"models:/{registry.name}/1")  # imports, file cache
        bare_s = bare(source, tmp / "bare.parquet", f"models:/{registry.name}/1")
        ours_s = flywheel(
            source, tmp / "ours.parquet", tmp, registry.uri, registry.name, args.chunk_rows
        )
    print(f"rows: {args.rows:,}  chunk: {args.chunk_rows:,}")
    print(f"bare pandas + pyfunc: {bare_s:6.2f} s  {args.rows / bare_s:>12,.0f} rows/s")
    print(f"flywheel predict:     {ours_s:6.2f} s  {args.rows / ours_s:>12,.0f} rows/s")
    print(f"ratio flywheel/bare (rows/s): {bare_s / ours_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
