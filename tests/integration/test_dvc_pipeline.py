"""`dvc repro` and `flywheel run` drive the same steps with one state (DVC's lock and cache):
real DVC and the real CLI in a temporary git repository, in file order."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_project, project_in_use, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Path]:
    """A fresh clone (no data/, no DVC cache) with the code DVC hashes, after `make install`."""
    root = make_project(tmp_path_factory.mktemp("dvc") / "project", extra=("src",), data=False)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # dvc finds flywheel
    with project_in_use(root, PATH=path, PREFECT_API_URL=prefect_server):
        # what `make install` does after installing: DVC cannot repro a missing data source
        pulled = run_cli(root, "pull-data")
        assert pulled.returncode == 0, pulled.stderr
        yield root


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# The flags the README gives for `dvc exp show` (section "DVC"): changed columns, no
# dependency hashes, and the key metrics always.
EXP_SHOW_FLAGS = ("--only-changed", "--drop", ".*/", "--keep", "^(roc_auc|pr_auc|brier)$")


def in_a_terminal(root: Path, command: list[str], columns: int) -> str:
    """What `command` prints to a terminal `columns` wide (DVC only fits tables to a tty)."""
    import pty
    import select

    main, child = pty.openpty()
    env = os.environ | {"COLUMNS": str(columns), "LINES": "50", "TERM": "dumb"}
    process = subprocess.Popen(command, cwd=root, env=env, stdout=child, stderr=child)
    os.close(child)
    chunks = []
    try:
        while select.select([main], [], [], 300)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
        process.wait(timeout=60)
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", b"".join(chunks).decode())


def ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_repro_on_a_fresh_clone_runs_every_stage(clone: Path) -> None:
    output = dvc(clone, "repro")
    assert ran(output) == ["validate", "featurize", "train", "evaluate", "promote"]
    decision = json.loads((clone / "artifacts/promote/decision.json").read_text())
    assert decision["promoted"] and decision["version"] == "1"
    metrics = json.loads(dvc(clone, "metrics", "show", "--json"))
    assert metrics  # dvc reads metrics.json as metrics
    assert "roc_auc" in json.dumps(metrics)


def flywheel_run(root: Path) -> list[dict]:
    """`flywheel run` as a user (or the nightly schedule) runs it; returns its report."""
    done = run_cli(root, "run", "--report", "run.json")
    assert done.returncode == 0, f"flywheel run failed:\n{done.stdout}\n{done.stderr}"
    return json.loads((root / "run.json").read_text())["steps"]


def skipped(report: list[dict]) -> list[str]:
    return [row["step"] for row in report if "skipped" in row["summary"]]


def test_flywheel_run_after_repro_skips_every_step(clone: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    decision = (clone / "artifacts/promote/decision.json").read_text()
    report = flywheel_run(clone)
    assert skipped(report) == ["validate", "featurize", "train", "evaluate", "promote"]
    assert (clone / "artifacts/promote/decision.json").read_text() == decision  # nothing new
    champion = json.loads(decision)["champion_after"]
    serving = report[-1]["summary"]["serving"]  # the run says which champion goes on serving
    assert serving == f"flywheel-churn version {champion} keeps serving as champion"
    with get_client(sync_client=True) as prefect:
        latest = prefect.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        tasks = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[latest.id]))
        )
    assert len(tasks) == 5
    assert all(t.state and t.state.is_completed() and t.state.name == "Skipped" for t in tasks)


def test_second_repro_does_nothing(clone: Path) -> None:
    output = dvc(clone, "repro")
    assert ran(output) == []
    assert "up to date" in output.lower()


def test_a_changed_param_reruns_only_its_stage_in_the_flow_and_dvc_agrees(clone: Path) -> None:
    """The flow reruns exactly what `dvc repro` would, and records it so DVC has nothing to do.

    (`dvc exp run -S` below shows the same from DVC's side.)
    """
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["promote"]["min_delta"] = 0.01  # read by promote alone
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    report = flywheel_run(clone)
    assert skipped(report) == ["validate", "featurize", "train", "evaluate"]
    assert dvc(clone, "status").strip() == "Data and pipelines are up to date."
    assert ran(dvc(clone, "repro")) == []


def test_exp_run_with_a_set_param(clone: Path) -> None:
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-qm", "first run"], cwd=clone, check=True)
    output = dvc(clone, "exp", "run", "-S", "evaluate.threshold=0.4")
    assert ran(output) == ["evaluate", "promote"]
    assert yaml.safe_load((clone / "params.yaml").read_text())["evaluate"]["threshold"] == 0.4
    shown = json.loads(dvc(clone, "exp", "show", "--json"))
    assert "0.4" in json.dumps(shown)
    # An experiment registers and is judged, but never moves the champion by itself.
    decision = json.loads((clone / "artifacts/promote/decision.json").read_text())
    assert not decision["promoted"]
    assert decision["champion_after"] == decision["champion_before"] == "1"
    dvc(clone, "metrics", "diff")  # the committed first run is the baseline

    # The README's `dvc exp show`, in a 120-column terminal: values, not "…" or "!".
    table = in_a_terminal(clone, ["dvc", "exp", "show", "--no-pager", *EXP_SHOW_FLAGS], 120)
    assert "…" not in table and "!" not in table, table
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert {"roc_auc", "evaluate.threshold"} <= set(header), table
    rows = [line.split() for line in table.splitlines() if "[" in line and "]" in line]
    assert rows and "0.4" in rows[0], table  # the experiment's changed param
    assert any(re.fullmatch(r"0\.\d{4,}", cell) for cell in rows[0]), table  # a metric value


def test_plots_render_offline(clone: Path) -> None:
    dvc(clone, "plots", "show", "-o", "plots-out")
    page = (clone / "plots-out" / "index.html").read_text()
    assert "vega" in page and "cdn.jsdelivr" not in page and "<script src=" not in page
    # the four top-level views only, no default-template duplicate per plot file
    assert page.count("vegaEmbed('#") == 4


def test_force_reruns_every_step(clone: Path) -> None:
    """`flywheel run --force`: every step runs although dvc.lock says all are up to date."""
    assert skipped(flywheel_run(clone)) == ["validate", "featurize", "train", "evaluate",
                                             "promote"]
    done = run_cli(clone, "run", "--force", "--report", "forced.json")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((clone / "forced.json").read_text())["steps"]
    assert skipped(report) == [] and [r["step"] for r in report][-1] == "promote"
