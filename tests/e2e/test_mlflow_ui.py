"""`flywheel ui` as a user starts it, seen by a headless browser: the runs table, not GenAI.

MLflow 3.17's UI opens experiments in its GenAI view ("Overview of Traces") and shows no
metric columns by default; `flywheel ui` prints a link that opens the runs table in "Model
training" mode with the metric columns of the project's view (flywheel/registry/ui.py).
The store is the one the pipeline wrote in test_pipeline.py, which calls `check_ui` on it (one
pipeline run serves both); here, a project that never ran checks the command's error path.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import cli_command, cli_env, make_project, require_program, run_cli
from tests.integration.serving.conftest import free_port, stop_process, wait_for

pytestmark = pytest.mark.slow


def check_ui(root: Path, run_names: list[str], metric: str) -> None:
    """Start `flywheel ui` in `root`, open the link it prints, and read the rendered page."""
    chromium = require_program("chromium")
    port = free_port()
    server = subprocess.Popen(
        cli_command("ui", "--port", str(port)), cwd=root, env=cli_env(root),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        link = re.search(r"http://\S+", first)
        assert link, first
        wait_for(lambda: _healthy(port), 180, "mlflow server")
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,900",
             "--virtual-time-budget=20000", "--dump-dom", link[0]],
            capture_output=True, text=True, timeout=180, check=True,
        ).stdout  # fmt: skip
    finally:
        stop_process(server)
    assert "Overview of Traces" not in dom and "No data available" not in dom
    for name in run_names:
        assert name[:20] in dom, name  # the table cuts long names with an ellipsis
    assert f">{metric}<" in dom  # a metric column header
    assert re.search(r">0\.\d{2,}", dom), "no metric values in the runs table"


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_ui_without_a_run_says_to_run_first(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    without_store = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = run_cli(root, "ui", "--port", str(free_port()), base=without_store)
    assert done.returncode == 5, done.stderr
    assert "no experiment 'flywheel-churn'" in done.stderr and "flywheel run" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
