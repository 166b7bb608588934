"""The default run on the platform against the same computation as a bare script.

Platform: `flywheel run` (Prefect flow, Great Expectations, DVC data check, MLflow logging,
registration, fresh-process load check) in a throwaway copy of the project with a fresh
MLflow store. Bare: pandas + scikit-learn + torch doing the same split, transformer, candidates
and test metrics, no Prefect, MLflow, DVC or Great Expectations. Both run as fresh processes in
this session, so both pay their imports. With no Prefect server configured (a temporary one
starts inside the run, as for `make run`) the platform runs twice in one copy: "fresh", the
first run of a fresh clone (no Prefect database, MLflow store or artifacts), and "warm", a
second run of every step in that project. `--with-server` adds "server": a fresh clone's run
against a `prefect server start` that is already up, as on a team's machine.

    .venv/bin/python benchmarks/pipeline.py [--repeat N] [--with-server]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from project_copy import REPO, copy_project  # benchmarks/ is the script's folder


def bare() -> dict[str, float]:
    """The same computation with no platform around it; prints its step times as JSON."""
    times: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        times[name] = now - mark
        mark = now

    import pandas as pd

    from flywheel.config import load_params
    from flywheel.data.io import feature_frame, target_vector
    from flywheel.data.spec import load_spec

    params = load_params(REPO / "params.yaml")
    spec = load_spec(REPO / params.data.spec)
    frame = pd.read_csv(REPO / spec.path, skipinitialspace=True)
    lap("load")

    from flywheel.features.encoding import fit_encoding
    from flywheel.features.split import content_rule, split_frame

    y = target_vector(spec, frame)
    table = feature_frame(spec, frame).assign(y=y)
    parts = split_frame(table, y, content_rule(table, params.featurize, copies=True))
    encodings = {
        kind: fit_encoding(spec, parts["train"], kind, params.featurize.max_categories)
        for kind in ("one_hot", "native")
    }
    lap("featurize")

    from flywheel.training.candidates import ENCODINGS, Matrices, select_best, train_candidates

    inputs = {
        kind: Matrices(
            e.transform(parts["train"]), e.transform(parts["valid"]), e.categorical_columns
        )
        for kind, e in encodings.items()
    }
    with tempfile.TemporaryDirectory() as scratch:
        results = train_candidates(
            params.train,
            inputs,
            parts["train"]["y"].to_numpy(),
            parts["valid"]["y"].to_numpy(),
            checkpoint_dir=Path(scratch),
        )
    best = select_best(results, params.train.selection_metric)
    lap("train")

    from sklearn.metrics import roc_auc_score

    test = encodings[ENCODINGS[best.name]].transform(parts["test"])
    proba = best.estimator.predict_proba(test)[:, 1]
    times["test_roc_auc"] = float(roc_auc_score(parts["test"]["y"], proba))
    lap("evaluate")
    return times


SETTLE_S = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_prefect_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`prefect server start` on loopback, as a team's machine has it running already."""
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api"
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2):
                time.sleep(SETTLE_S)  # its services finish starting after health answers
                return server, api
        except OSError:
            time.sleep(1)
    server.terminate()
    raise RuntimeError("prefect server did not become healthy in 120 s")


def children_cpu() -> float:
    """CPU seconds of the finished child processes (and theirs): steadier than wall time on a
    busy machine, and it counts the temporary server and the load check too."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def flywheel_run(project: Path, env: dict[str, str], report: Path) -> dict:
    """One `flywheel run` as a fresh process; its wall and CPU time and the report it writes."""
    started, cpu = time.perf_counter(), children_cpu()
    subprocess.run(
        [str(Path(sys.executable).parent / "flywheel"), "run", "--report", str(report)],
        cwd=project,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    result = json.loads(report.read_text())
    return {
        "wall": wall,
        "cpu": children_cpu() - cpu,
        "flow": result["seconds"],
        "steps": {s["step"]: s["seconds"] for s in result["steps"]},
        "roc_auc": result["steps"][3]["summary"]["roc_auc"],
    }


def platform(workdir: Path) -> tuple[dict, dict]:
    """A fresh clone's first run (no Prefect database, MLflow store or artifacts), then a
    second run in the same project: its Prefect database and MLflow store exist and a
    champion is registered (so evaluate and promote also score and compare the champion).
    dvc.lock is removed between the two, so every step runs again instead of being skipped.
    """
    project, env = copy_project(workdir)
    first = flywheel_run(project, env, workdir / "first.json")
    (project / "dvc.lock").unlink(missing_ok=True)  # absent when DVC cannot record the stages
    return first, flywheel_run(project, env, workdir / "warm.json")


def served(workdir: Path) -> dict:
    """A fresh clone's first run against a `prefect server start` that is already up."""
    project, env = copy_project(workdir)
    server, env["PREFECT_API_URL"] = start_prefect_server(env)
    try:
        return flywheel_run(project, env, workdir / "served.json")
    finally:
        server.terminate()
        server.wait(timeout=60)


def measure_bare() -> dict[str, float]:
    started, cpu = time.perf_counter(), children_cpu()
    out = subprocess.run(
        [sys.executable, __file__, "--bare"], capture_output=True, text=True, check=True
    ).stdout
    measured = {"wall": time.perf_counter() - started, "cpu": children_cpu() - cpu}
    return json.loads(out.strip().splitlines()[-1]) | measured


def faster(best: dict | None, run: dict) -> dict:
    return run if best is None or run["wall"] < best["wall"] else best


def print_table(bare: dict, runs: dict[str, dict]) -> None:
    """Step times of each platform run next to the bare script's, then the walls and ratios."""
    names = list(runs)
    print(f"{'step':<12}{'bare s':>10}" + "".join(f"{n + ' s':>14}" for n in names))
    pairs = [("validate", ()), ("featurize", ("load", "featurize")), ("train", ("train",))]
    pairs += [("evaluate", ("evaluate",)), ("promote", ())]
    for step, bare_steps in pairs:
        theirs = f"{sum(bare[b] for b in bare_steps):.2f}" if bare_steps else "-"
        mine = "".join(f"{runs[n]['steps'][step]:>14.2f}" for n in names)
        print(f"{step:<12}{theirs:>10}{mine}")

    def row(label: str, values: list[float]) -> None:
        print(f"{label:<22}" + "".join(f"{v:>14.2f}" for v in values))

    row("steps total", [sum(runs[n]["steps"].values()) for n in names])
    row("flow total", [runs[n]["flow"] for n in names])
    for what in ("wall", "cpu"):
        mine = "".join(f"{runs[n][what]:>14.2f}" for n in names)
        print(f"{what:<12}{bare[what]:>10.2f}{mine}")
    aucs = ", ".join(f"{n} {runs[n]['roc_auc']:.4f}" for n in names)
    print(f"test ROC-AUC: bare {bare['test_roc_auc']:.4f}, {aucs}")
    for name in names:
        print(
            f"ratio {name}/bare (wall): {runs[name]['wall'] / bare['wall']:.2f}"
            f"   (cpu: {runs[name]['cpu'] / bare['cpu']:.2f})"
        )


def bytecode_note() -> str | None:
    """Without compiled bytecode every fresh process recompiles what it imports (`make
    install` compiles it, as pip does; a `uv sync` without UV_COMPILE_BYTECODE=1 does not)."""
    import sklearn

    if not (Path(sklearn.__file__).parent / "__pycache__").is_dir():
        return "note: site-packages has no compiled bytecode; every process recompiles its imports"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, best kept")
    parser.add_argument(
        "--with-server", action="store_true", help="also run against `prefect server start`"
    )
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        print(json.dumps(bare()))
        return

    best: dict[str, dict | None] = {"bare": None, "fresh": None, "warm": None, "server": None}
    for _ in range(args.repeat):
        best["bare"] = faster(best["bare"], measure_bare())
        with tempfile.TemporaryDirectory() as workdir:
            fresh, warm = platform(Path(workdir))
        best["fresh"], best["warm"] = faster(best["fresh"], fresh), faster(best["warm"], warm)
        if args.with_server:
            with tempfile.TemporaryDirectory() as workdir:
                best["server"] = faster(best["server"], served(Path(workdir)))
    runs = {name: run for name, run in best.items() if name != "bare" and run is not None}
    assert best["bare"] is not None
    print_table(best["bare"], runs)
    note = bytecode_note()
    if note:
        print(note)


if __name__ == "__main__":
    main()
