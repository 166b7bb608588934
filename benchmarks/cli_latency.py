"""How long `flywheel status` and `flywheel --help` take in fresh processes (target: < 2 s).

Each command runs `--repeats` times in a new process against a project with a champion and
prints the median wall time and the median CPU time (user + system) the process used; CPU time
barely moves when other work shares the machine, wall time does. Without `--project` a
throwaway copy of this project is made and `flywheel run` registers a first champion (minutes).

    python benchmarks/cli_latency.py --project /path/to/project --repeats 5
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from project_copy import copy_project  # noqa: E402

COMMANDS = (("status",), ("status", "--json"), ("--help",))
TARGET_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--project", type=Path, help="a project with a champion (default: make one)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command")
    args = parser.parse_args()
    flywheel = shutil.which("flywheel") or str(Path(sys.executable).with_name("flywheel"))
    with tempfile.TemporaryDirectory() as tmp:
        project, env = _project(args.project, Path(tmp), flywheel)
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        for command in COMMANDS:
            walls, cpus = zip(
                *(_once([flywheel, *command], project, env) for _ in range(args.repeats)),
                strict=True,
            )
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            print(
                f"flywheel {' '.join(command):<14} median wall {wall:5.2f} s  cpu {cpu:5.2f} s  "
                f"wall/target {wall / TARGET_S:4.2f}  (n={args.repeats})"
            )
        print(f"load average after: {os.getloadavg()[0]:.1f}")


def _project(given: Path | None, tmp: Path, flywheel: str) -> tuple[Path, dict[str, str]]:
    if given is not None:
        return given, os.environ | {"FLYWHEEL_ROOT": str(given.resolve())}
    project, env = copy_project(tmp)
    print("registering a first champion with `flywheel run` ...", flush=True)
    subprocess.run([flywheel, "run"], cwd=project, env=env, check=True, capture_output=True)
    return project, env


def _once(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


if __name__ == "__main__":
    main()
