"""What a short inference-log roll costs: the writer's flushes, and the monitor's read.

`serve.inference_log_roll_seconds` bounds how stale `flywheel monitor` and `/feedback` are
(a request is in the log at most that long after it was answered). A shorter roll means more,
smaller files. This measures both sides with the service's own writer (`InferenceLog`) and
reader (`read_log`), for each roll interval given:

- flush: milliseconds one roll takes on the writer thread (concatenate, write Parquet) at
  `--rate` requests/s, and the share of one core that is (what requests could lose to it);
- read: seconds for one monitor window (`--window-minutes`) of files rolled that often.

    .venv/bin/python benchmarks/log_roll.py [--rolls 5 300] [--rate 20] [--window-minutes 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _entries(spec: object, rows: int) -> list[object]:
    from flywheel.data.io import read_table
    from flywheel.serving.inference_log import LogEntry

    table = read_table(ROOT / spec.path).head(rows)  # type: ignore[attr-defined]
    names = [f.name for f in spec.features]  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    return [
        LogEntry(f"r{i}", now, orjson.dumps(record),
                 orjson.dumps([{"prediction": "No", "probability": 0.2, "model_version": "1"}]))
        for i, record in enumerate(table[names].to_dict("records"))
    ]


def flush_ms(spec: object, rows: int, folder: Path) -> float:
    """Best of 5: one roll of `rows` one-record requests, parsed and written."""
    from flywheel.serving.inference_log import InferenceLog

    entries = _entries(spec, rows)
    best = float("inf")
    for _ in range(5):
        log = InferenceLog(folder, spec, roll_rows=10**9, roll_seconds=3600,  # type: ignore[arg-type]
                           queue_size=10**9)
        started = time.perf_counter()
        log._add(entries)  # what the writer thread does with one roll's requests
        log._flush()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def read_s(spec: object, roll_s: float, rows_per_file: int, minutes: float, folder: Path) -> float:
    """One monitor window of files rolled every `roll_s`, read as `flywheel monitor` does."""
    import shutil

    from flywheel.monitoring.logread import read_log

    template = next(folder.glob("*.parquet"))
    files = int(minutes * 60 / roll_s)
    window = folder / f"window-{roll_s:g}"
    window.mkdir()
    for i in range(files):
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        shutil.copy(template, window / f"inference-{stamp}-1-{i:05d}.parquet")
    columns = [f.name for f in spec.features] + ["probability"]  # type: ignore[attr-defined]
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    started = time.perf_counter()
    read_log(window, columns, since=since, version="1")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rolls", type=float, nargs="+", default=[5, 300])
    parser.add_argument("--rate", type=float, default=20, help="requests/s (one record each)")
    parser.add_argument("--window-minutes", type=float, default=60)
    args = parser.parse_args()
    from flywheel.config import load_params
    from flywheel.data.spec import load_spec

    spec = load_spec(ROOT / load_params(ROOT / "params.yaml").data.spec)
    print(f"{'roll s':>7} {'rows/file':>9} {'flush ms':>9} {'core %':>7} {'files/window':>12} "
          f"{'read s':>7}")
    for roll in args.rolls:
        rows = max(1, int(args.rate * roll))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            ms = flush_ms(spec, rows, folder / "log")
            read = read_s(spec, roll, rows, args.window_minutes, folder / "log")
        files = int(args.window_minutes * 60 / roll)
        print(f"{roll:>7g} {rows:>9} {ms:>9.1f} {ms / 10 / roll:>7.3f} {files:>12} {read:>7.2f}")


if __name__ == "__main__":
    main()
