"""Flywheel's BentoML service against a bare FastAPI app serving the same MLflow model.

Trains a small champion into a temp MLflow store (as the serving tests do), starts both servers
on loopback, one at a time, with the same number of worker processes (`--workers`, default 1:
the service's default; the bare app runs `uvicorn --workers N`), and drives each with `hey` and
`wrk`, compiled load generators (a Python client would share the two cores with the server and
cap what it can show). For each server, in this order:

    c1 fresh      one client, before any burst           hey -n SINGLE -c 1
    c32           32 clients (the server's capacity)     hey -n REQUESTS -c 32
    c1 after      one client, right after the burst      hey -n SINGLE -c 1
    c8            8 clients                              hey -n REQUESTS -c 8
    c64           64 clients                             hey -n REQUESTS -c 64
    large         LARGE_ROWS-record bodies, one client   hey -n LARGE_REQUESTS -c 1
    open 50%      fixed rate, half its own c32 capacity  wrk -t1 -c C -s constant_rate.lua
    open 80%      the same at 80% of that capacity

The open-loop runs send at a constant arrival rate: `wrk` with benchmarks/constant_rate.lua
sends the k-th request at start + k/RATE from a pool of C connections (C = RATE x
`--open-slack` seconds, at least 128, so a connection is free at each slot), whatever
the answers' latency. Each server runs at the given share of its own c32 throughput. A run is
"not held" when it got under 95% of the asked rate or a send left more than 10 ms after its
slot (wrk measures latency from the actual send, so a late send would hide waiting).

Prints one table: scenario, Flywheel and bare req/s (rows/s for large bodies), ratio, p50 and
p99 of both, the target and whether it is met. Both servers and the load generators share this
machine: the ratios are the point; on a loaded machine say so next to any figure.

    .venv/bin/python benchmarks/serving.py [--requests 1500] [--single 300] [--large-rows 2000]
        [--large-requests 30] [--open-seconds 10] [--open-slack 0.25] [--workers 1]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
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
import yaml

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
    tmp: Path, tracking_uri: str, model_name: str, workers: int
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
            "--workers",
            str(workers),
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


def constant_rate(url: str, body: Path, rate: float, seconds: int,
                  slack_s: float) -> dict[str, float]:
    """One fixed-rate `wrk` run (benchmarks/constant_rate.lua); its JSON line as a result."""
    connections = max(128, math.ceil(rate * slack_s))
    command = [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "60s",
               "-s", str(CONSTANT_RATE), f"{url}/predict", "--", f"{rate:.3f}", str(body)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120,
                          check=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout[-500:]} {done.stderr[-500:]}")
    result = json.loads(line)
    return {
        "requests_per_s": result["requests"] / result["duration_s"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "non_200": result["non_2xx"] + result["socket_errors"],
        "requests": result["requests"],
        "target_per_s": rate,
        "max_late_ms": result["max_late_ms"],
        "connections": connections,
    }


def run_server(
    name: str, url: str, one: Path, large: Path, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}

    def record(label: str, result: dict[str, float]) -> dict[str, float]:
        results[label] = result
        logger.info("%-8s %-10s %s", name, label, result)
        return result

    def step(label: str, body: Path, *flags: str) -> dict[str, float]:
        return record(label, hey(url, body, *flags))

    hey(url, one, "-n", "30", "-c", "1")  # connections and first-call costs, not measured
    step("c1 fresh", one, "-n", str(args.single), "-c", "1")
    capacity = step("c32", one, "-n", str(args.requests), "-c", "32")["requests_per_s"]
    step("c1 after", one, "-n", str(args.single), "-c", "1")
    step("c8", one, "-n", str(args.requests), "-c", "8")
    step("c64", one, "-n", str(args.requests), "-c", "64")
    step("large", large, "-n", str(args.large_requests), "-c", "1")
    results["large"]["rows_per_s"] = args.large_rows * results["large"]["requests_per_s"]
    for share in OPEN_SHARES:
        record(f"open {share:.0%}", constant_rate(url, one, capacity * share, args.open_seconds,
                                                  args.open_slack))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="requests at c=8, 32 and 64")
    parser.add_argument("--single", type=int, default=300, help="requests at c=1")
    parser.add_argument("--large-rows", type=int, default=2000, help="records per large body")
    parser.add_argument("--large-requests", type=int, default=30)
    parser.add_argument("--open-seconds", type=int, default=10, help="open-loop duration")
    parser.add_argument("--open-slack", type=float, default=0.25,
                        help="open-loop connections = rate x this many seconds (>= 128)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of both servers (same for both)")
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
        flywheel = start_server(tmp / "flywheel", registry, **production_serving(args.workers))
        try:
            results["flywheel"] = run_server("flywheel", flywheel.url, one, large, args)
        finally:
            stop_server(flywheel)
        bare, bare_url = start_bare(tmp, registry.uri, registry.name, args.workers)
        try:
            results["bare"] = run_server("bare", bare_url, one, large, args)
        finally:
            stop_process(bare)
    print(report(results, args))  # the benchmark's output is its report
    return 0


ROW = "{:<10}{:>12}{:>12}{:>7}{:>9}{:>9}{:>9}{:>9}  {:<26}{}"


def production_serving(workers: int) -> dict[str, object]:
    """params.yaml's own serving settings (the test server's fast log roll and registry polling
    would add work a deployment does not do), with room for the large bodies."""
    serve = dict(yaml.safe_load((ROOT / "params.yaml").read_text())["serve"])
    return {**serve, "workers": workers, "max_body_bytes": 64 * 1024 * 1024}


def report(results: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace) -> str:
    """One table: throughput of both, ratio, latency of both, the target and whether it holds."""
    lines = [
        ROW.format("scenario", "flywheel", "bare", "ratio", "fly p50", "bare p50", "fly p99",
                   "bare p99", "target", "met"),
    ]
    for run in results["flywheel"]:
        fly, bare = results["flywheel"][run], results["bare"][run]
        key = "rows_per_s" if run == "large" else "requests_per_s"
        ratio = fly[key] / bare[key]
        target, met = verdict(run, fly, bare, ratio)
        lines.append(ROW.format(
            "large/rows" if run == "large" else run, f"{fly[key]:,.0f}", f"{bare[key]:,.0f}",
            f"{ratio:.2f}",
            f"{fly['p50_ms']:.1f}", f"{bare['p50_ms']:.1f}", f"{fly['p99_ms']:.1f}",
            f"{bare['p99_ms']:.1f}", target, met))
    for name in ("flywheel", "bare"):
        errors = sum(int(r["non_200"]) for r in results[name].values())
        open_runs = "; ".join(
            f"{run} asked {r['target_per_s']:.1f}/s got {r['requests_per_s']:.1f}/s "
            f"(latest send {r['max_late_ms']:.0f} ms late, {r['connections']:.0f} connections"
            f"{'' if held(r) else ', NOT held: its p99 understates the wait'})"
            for run, r in results[name].items() if run.startswith("open"))
        lines.append(f"{name}: {open_runs}; non-200 answers in all runs: {errors}")
    lines.append(f"workers per server: {args.workers}; large bodies: {args.large_rows} records")
    return "\n".join(lines)


def verdict(run: str, fly: dict[str, float], bare: dict[str, float],
            ratio: float) -> tuple[str, str]:
    """The issue's target for a scenario and whether this run met it."""
    if run in ("c1 fresh", "c1 after"):
        return "p50 <= bare p50 + 3 ms", _yes(fly["p50_ms"] <= bare["p50_ms"] + 3)
    if run == "c32":
        return ">= 3x bare, p99 <= 250 ms", _yes(ratio >= 3 and fly["p99_ms"] <= 250)
    if run in ("c8", "c64"):
        return "p99 <= 250 ms", _yes(fly["p99_ms"] <= 250)
    if run == "large":
        return "rows/s >= 1x bare", _yes(ratio >= 1)
    if run.startswith("open"):
        return "rate held, p99 <= 250 ms", _yes(fly["p99_ms"] <= 250) if held(fly) else "not held"
    return "-", "-"


def held(run: dict[str, float]) -> bool:
    """Whether an open-loop run kept its rate: 95% of it, no send over 10 ms behind its slot."""
    return run["requests_per_s"] >= 0.95 * run["target_per_s"] and run["max_late_ms"] <= 10


def _yes(condition: bool) -> str:
    return "yes" if condition else "no"


HEY = shutil.which("hey") or "hey"
WRK = shutil.which("wrk") or "wrk"
CONSTANT_RATE = Path(__file__).with_name("constant_rate.lua")
OPEN_SHARES = (0.5, 0.8)  # open-loop rates, as shares of each server's own c32 throughput

if __name__ == "__main__":
    sys.exit(main())
