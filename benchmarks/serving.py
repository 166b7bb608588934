"""Flywheel's BentoML service against a bare FastAPI app serving the same MLflow model.

Trains a small champion into a temp MLflow store (as the serving tests do), starts both servers
on loopback, drives each with the same bounded load (single-record requests at several
concurrencies, then large batches) and prints requests/s, p50/p99 latency, the ratio
Flywheel / bare, and batch rows/s. Both servers and the load generator share this machine, so
the figures are relative; the ratio is the point.

    .venv/bin/python benchmarks/serving.py [--requests 1000] [--batch-rows 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

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


def start_bare(tmp: Path, tracking_uri: str, model_name: str) -> tuple[subprocess.Popen[bytes],
                                                                         str]:
    app = tmp / "bare_app.py"
    app.write_text(BARE_APP)
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "BENCH_MODEL_URI": f"models:/{model_name}@champion"}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port",
         str(port), "--no-access-log", "--log-level", "warning"],
        cwd=tmp, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
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


async def drive(url: str, bodies: list[Any], concurrency: int) -> dict[str, float]:
    """Send every body once with `concurrency` requests in flight; latency per request."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post("/predict", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_per_s": len(bodies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": errors,
        "elapsed_s": elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="single-record requests per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--log-sample-rate", type=float, default=None,
                        help="override serve.inference_log_sample_rate (default: params.yaml)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line a request skews the client

    records = sample_records()
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "registry").mkdir()
        logger.info("training a small champion into %s", tmp / "registry")
        registry = _train_and_log(tmp / "registry")
        registry.register(commit="bench", data_md5="bench")
        overrides: dict[str, Any] = {"max_body_bytes": 64 * 1024 * 1024}
        if args.log_sample_rate is not None:
            overrides["inference_log_sample_rate"] = args.log_sample_rate
        flywheel = start_server(tmp / "flywheel", registry, **overrides)
        bare, bare_url = start_bare(tmp, registry.uri, registry.name)
        try:
            results = run_load(flywheel.url, bare_url, records, args)
        finally:
            stop_server(flywheel)
            stop_process(bare)
    report(results, args)
    return 0


def run_load(flywheel_url: str, bare_url: str, records: list[dict[str, Any]],
             args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {"flywheel": {}, "bare": {}}
    singles = [records[i % len(records)] for i in range(args.requests)]
    batch = [records[i % len(records)] for i in range(args.batch_rows)]
    for name, url in (("flywheel", flywheel_url), ("bare", bare_url)):
        asyncio.run(drive(url, singles[:50], 8))  # warm up
        flywheel_single = name == "flywheel"
        for concurrency in args.concurrency:
            # Flywheel takes one object or a list; the bare app takes a list.
            bodies = singles if flywheel_single else [[r] for r in singles]
            results[name][f"c{concurrency}"] = asyncio.run(drive(url, bodies, concurrency))
            logger.info("%s c=%d: %s", name, concurrency, results[name][f"c{concurrency}"])
        stats = asyncio.run(drive(url, [batch] * args.batches, 1))
        stats["rows_per_s"] = args.batch_rows * stats["requests_per_s"]
        results[name]["batch"] = stats
        logger.info("%s batch: %s", name, stats)
    return results


def report(results: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace) -> None:
    lines = [f"{'load':<10}{'server':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
             f"{'errors':>8}{'ratio':>8}"]
    for level in [f"c{c}" for c in args.concurrency] + ["batch"]:
        fly, bare = results["flywheel"][level], results["bare"][level]
        ratio = fly["requests_per_s"] / bare["requests_per_s"]
        for name, stats in (("flywheel", fly), ("bare", bare)):
            lines.append(
                f"{level:<10}{name:<10}{stats['requests_per_s']:>10.1f}{stats['p50_ms']:>10.1f}"
                f"{stats['p99_ms']:>10.1f}{int(stats['errors']):>8}"
                f"{(f'{ratio:.2f}' if name == 'flywheel' else ''):>8}")
    for name in ("flywheel", "bare"):
        lines.append(f"batch rows/s {name}: {results[name]['batch']['rows_per_s']:,.0f} "
                     f"({args.batch_rows} rows a request)")
    print("\n".join(lines))  # the benchmark's output is its report


if __name__ == "__main__":
    sys.exit(main())
