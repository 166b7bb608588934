"""Wall time of the monitoring flow, against the library call it wraps, in one process.

Sets up a temp MLflow store with a champion and its reference profile (the e2e helper) and an
inference log of N rows of the default table (in files of 50,000, as the service rolls them),
then times (best of `--repeat`): the bare report (`compute_report` + `write_report`) and the
whole `flywheel-monitoring` flow (report, MLflow run with its metrics and artifact, retraining
decision) against a temporary Prefect server, whose start-up is left out. Prints both and the
ratio: what orchestration and logging add to the report.

    .venv/bin/python benchmarks/monitoring_flow.py [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILE_ROWS = 50_000


def setup(tmp: Path, rows: int) -> None:
    """Champion, profile, log and params under `tmp`; the settings point at them."""
    from flywheel.config import load_params
    from flywheel.data.io import feature_frame, read_table
    from flywheel.data.spec import load_spec
    from flywheel.monitoring.profile import ARTIFACT, build_profile
    from tests.e2e.test_monitoring_loop import MODEL, champion_with_profile
    from tests.unit.test_monitoring_report import churn_score, write_log

    registry = champion_with_profile(tmp / "registry")
    spec = load_spec(ROOT / "specs" / "wa_churn.yaml")
    reference = feature_frame(spec, read_table(ROOT / spec.path))
    # The log's scores come from write_log's stand-in model: profile those, so the window
    # is clean and the flow's retraining decision is "no".
    monitor = load_params(ROOT / "params.yaml").monitor
    profile = build_profile(spec, reference, churn_score(reference), monitor)
    registry.client().log_dict(registry.run_id, profile, ARTIFACT)
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    for start in range(0, rows, FILE_ROWS):
        sample = reference.iloc[rng.integers(0, len(reference), min(FILE_ROWS, rows - start))]
        write_log(tmp / "log" / MODEL, spec, sample.reset_index(drop=True), "1", now, f"b{start}")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["promote"]["model_name"] = MODEL
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp / "specs").mkdir()
    (tmp / "specs" / "wa_churn.yaml").write_text((ROOT / "specs" / "wa_churn.yaml").read_text())
    os.environ.update(
        FLYWHEEL_ROOT=str(tmp),
        FLYWHEEL_PARAMS_FILE=str(tmp / "params.yaml"),
        FLYWHEEL_TRACKING_URI=registry.uri,
        MLFLOW_TRACKING_URI=registry.uri,
        FLYWHEEL_INFERENCE_LOG_DIR=str(tmp / "log"),
        FLYWHEEL_FEEDBACK_DIR=str(tmp / "fb"),
        FLYWHEEL_MONITOR_DIR=str(tmp / "monitor"),
    )


def bare() -> dict:
    from flywheel.config import load_params
    from flywheel.monitoring.report import report_now
    from flywheel.settings import settings

    current = settings()
    return report_now(current, load_params(current.params_path))


def best(run: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.monitoring import monitoring

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        setup(Path(tmp), args.rows)
        rows = bare()["window"]["rows"]
        monitoring()  # warm-up: the first flow call registers the flow
        report = best(bare, args.repeat)
        flow = best(monitoring, args.repeat)
    print(f"rows in the window: {rows:,}")
    print(f"report alone (compute + write)   {report:.2f} s")
    print(f"monitoring flow (+ MLflow, Prefect) {flow:.2f} s")
    print(f"ratio flow/report: {flow / report:.2f}x")


if __name__ == "__main__":
    main()
