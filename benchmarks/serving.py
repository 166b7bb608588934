"""Flywheel's BentoML service against a bare FastAPI app serving the same MLflow model.

Trains a small champion into a temp MLflow store (as the serving tests do), starts both servers
on loopback and drives each with `hey`, a compiled load generator (a Python client would share
the two cores with the server and cap what it can show). For each server, in this order:

    c1 fresh      one client, before any burst           hey -n N1 -c 1
    c32 burst     32 clients                             hey -n N32 -c 32
    c1 after      one client, right after the burst      hey -n N1 -c 1
    c8            8 clients                              hey -n N8 -c 8
    large         2,000-record bodies, one client        hey -n NL -c 1
    open loop     fixed rate at 50% of the c32 capacity  hey -z 10s -c 32 -q RATE/32

`hey -q` paces each of its workers, so the open-loop run holds its rate only while latency
stays under 32/RATE seconds (wrk2 is not packaged here); the achieved rate is printed. Prints
req/s, p50/p99 and non-200 counts per run and the Flywheel/bare ratios. Both servers and hey
share this machine: figures are relative, the ratios are the point.

    .venv/bin/python benchmarks/serving.py [--requests 1500] [--large-rows 2000]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.serving.conftest import (  # noqa: E402  (helpers shared with the tests)
    _train_and_log,
    free_port,
    sample_records,
    start_server,
    stop_server,
)

logger = logging.getLogger("benchmarks.serving")

BARE_APP = textwrap.dedent('''
    """The baseline: load the MLflow model, call predict once per request."""
    import os

    import mlflow.pyfunc
    import pandas as pd
    from fastapi import FastAPI

    model = mlflow.pyfunc.load_model(os.environ["BENCH_MODEL_URI"])
    app = FastAPI()

    @app.post("/predict")
    def predict(records: list[dict]) -> list[dict]:
        out = model.predict(pd.DataFrame.from_records(records))
        return out.to_dict(orient="records")

    @app.get("/ready")
    def ready() -> str:
        return "ok"
''')


def start_bare(
    tmp: Path, tracking_uri: str, model_name: str
) -> tuple[subprocess.Popen[bytes], str]:
    app = tmp / "bare_app.py"
    app.write_text(BARE_APP)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "BENCH_MODEL_URI": f"models:/{model_name}@champion",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=tmp,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_process(process)
    raise RuntimeError("the bare FastAPI app did not start")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def hey(url: str, body: Path, *args: str) -> dict[str, float]:
    """One `hey` run; latency percentiles from its per-request CSV, not its rounded summary."""
    command = [
        HEY,
        *args,
        "-m",
        "POST",
        "-T",
        "application/json",
        "-D",
        str(body),
        "-o",
        "csv",
        "-t",
        "60",
        f"{url}/predict",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    elapsed = time.perf_counter() - started
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    latencies = sorted(float(row["response-time"]) for row in rows)
    if not latencies:
        raise RuntimeError(f"hey recorded no requests: {done.stderr[-500:]}")
    span = max(float(r["offset"]) + float(r["response-time"]) for r in rows) or elapsed
    return {
        "requests_per_s": len(rows) / span,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "non_200": sum(row["status-code"] != "200" for row in rows),
        "requests": len(rows),
    }


def run_server(
    name: str, url: str, one: Path, large: Path, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}

    def step(label: str, body: Path, *flags: str) -> dict[str, float]:
        results[label] = hey(url, body, *flags)
        logger.info("%-8s %-10s %s", name, label, results[label])
        return results[label]

    hey(url, one, "-n", "30", "-c", "1")  # connections and first-call costs, not measured
    step("c1 fresh", one, "-n", str(args.single), "-c", "1")
    capacity = step("c32", one, "-n", str(args.requests), "-c", "32")["requests_per_s"]
    step("c1 after", one, "-n", str(args.single), "-c", "1")
    step("c8", one, "-n", str(args.requests), "-c", "8")
    step("large", large, "-n", str(args.large_requests), "-c", "1")
    results["large"]["rows_per_s"] = args.large_rows * results["large"]["requests_per_s"]
    per_worker = max(capacity * 0.5 / 32, 0.1)
    step("open 50%", one, "-z", f"{args.open_seconds}s", "-c", "32", "-q", f"{per_worker:.2f}")
    results["open 50%"]["target_per_s"] = per_worker * 32
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="requests at c=8 and c=32")
    parser.add_argument("--single", type=int, default=300, help="requests at c=1")
    parser.add_argument("--large-rows", type=int, default=2000, help="records per large body")
    parser.add_argument("--large-requests", type=int, default=30)
    parser.add_argument("--open-seconds", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    records = sample_records()
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp_name:
        tmp = Path(tmp_name)
        one, large = tmp / "one.json", tmp / "large.json"
        one.write_text(json.dumps([records[0]]))
        large.write_text(json.dumps([records[i % len(records)] for i in range(args.large_rows)]))
        (tmp / "registry").mkdir()
        logger.info("training a small champion into %s", tmp / "registry")
        registry = _train_and_log(tmp / "registry")
        registry.register(commit="bench", data_md5="bench")
        results: dict[str, dict[str, dict[str, float]]] = {}
        # One server at a time, so neither steals the other's cores.
        flywheel = start_server(tmp / "flywheel", registry, max_body_bytes=64 * 1024 * 1024)
        try:
            results["flywheel"] = run_server("flywheel", flywheel.url, one, large, args)
        finally:
            stop_server(flywheel)
        bare, bare_url = start_bare(tmp, registry.uri, registry.name)
        try:
            results["bare"] = run_server("bare", bare_url, one, large, args)
        finally:
            stop_process(bare)
    print(report(results, args))  # the benchmark's output is its report
    return 0


def report(results: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace) -> str:
    lines = [
        f"{'run':<10}{'server':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-200':>9}"
        f"{'ratio':>8}{'p50 +ms':>9}"
    ]
    for run in results["flywheel"]:
        fly, bare = results["flywheel"][run], results["bare"][run]
        ratio = fly["requests_per_s"] / bare["requests_per_s"]
        for name, stats in (("flywheel", fly), ("bare", bare)):
            extra = (
                f"{ratio:>8.2f}{fly['p50_ms'] - bare['p50_ms']:>+9.1f}"
                if name == "flywheel"
                else ""
            )
            lines.append(
                f"{run:<10}{name:<10}{stats['requests_per_s']:>9.1f}"
                f"{stats['p50_ms']:>9.1f}{stats['p99_ms']:>9.1f}"
                f"{int(stats['non_200']):>9}{extra}"
            )
    for name in ("flywheel", "bare"):
        large, open_loop = results[name]["large"], results[name]["open 50%"]
        lines.append(
            f"{name}: {large['rows_per_s']:,.0f} rows/s with {args.large_rows}-record "
            f"bodies; open loop asked {open_loop['target_per_s']:.0f}/s, got "
            f"{open_loop['requests_per_s']:.0f}/s, p99 {open_loop['p99_ms']:.0f} ms"
        )
    ratio = results["flywheel"]["large"]["rows_per_s"] / results["bare"]["large"]["rows_per_s"]
    lines.append(f"large bodies rows/s ratio flywheel/bare: {ratio:.2f}")
    return "\n".join(lines)


HEY = shutil.which("hey") or "hey"

if __name__ == "__main__":
    sys.exit(main())
