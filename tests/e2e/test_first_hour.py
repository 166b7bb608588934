"""README "Your first hour", followed in order on a fresh copy of the project, as a user outside
`make` runs it (none of the variables the Makefile exports): what each command prints, the
first version's lineage, a retrain that changes nothing, the service, the monitor page.

One project and one pass through the commands for the module; the tests read what it left.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import drawn_share, render
from tests.conftest import REPO, cli_command, make_project
from tests.integration.serving.conftest import free_port, stop_process, wait_for

pytestmark = pytest.mark.slow

SECTION = "## Your first hour"
MODEL = "flywheel-churn"
# What the Makefile exports, which a user running .venv/bin/flywheel by hand does not have.
MAKE_ONLY = ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "PREFECT_HOME", "BENTOML_HOME",
             "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "PREFECT_API_URL",
             "MLFLOW_TRACKING_URI", "FLYWHEEL_TRACKING_URI")
# Noise a user can do nothing about, as first seen on this happy path (issue 20, item 6).
NOISE = {
    "DVC pull warning before the fallback": r"pull failed|[Mm]issing cache|missing-files|"
                                            r"Is your cache up to date",
    "a Python warning with a source path": r"\w+Warning: ",
    "MLflow pickle/pip warning": r"pickle|pip requirements|pip_requirements",
    "telemetry attempt": r"[Tt]elemetry",
    "a traceback": r"Traceback",
}


def readme_commands() -> list[str]:
    """The section's commands, comments dropped, `.venv/bin/flywheel ` as `flywheel `."""
    readme = (REPO / "README.md").read_text()
    start = readme.index(f"\n{SECTION}\n")
    section = readme[start: readme.index("\n## ", start + 1)]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"README {SECTION}: no bash block"
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines()]
    return [line.removeprefix(".venv/bin/") for line in lines if line]


@dataclass
class Walk:
    root: Path
    env: dict[str, str]
    done: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    answers: list[Any] = field(default_factory=list)


def user_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MAKE_ONLY}
    # Prefect's and BentoML's homes default to ~: the user's home is this project's own folder.
    return {**env, "FLYWHEEL_ROOT": str(root), "HOME": str(root.parent / "home")}


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    port = free_port()
    root = make_project(tmp_path_factory.mktemp("first-hour") / "project", data=False,
                        params={"serve": {"port": port, "inference_log_roll_seconds": 1,
                                          "reload_interval_s": 1}})
    (root.parent / "home").mkdir()
    walked = Walk(root, user_env(root))
    server = None
    try:
        for command in readme_commands():
            if command.endswith("&"):
                server = start_serving(walked, command.rstrip("& "), port)
                continue
            walked.done[command] = subprocess.run(
                cli_command(*shlex.split(command)[1:]), cwd=root, env=walked.env,
                capture_output=True, text=True, timeout=900)
        yield walked
    finally:
        if server is not None:
            stop_process(server)


def start_serving(walked: Walk, command: str, port: int) -> subprocess.Popen[bytes]:
    """The README's `flywheel serve &`, then what the Swagger page's "Try it out" sends."""
    log = (walked.root.parent / "serve.log").open("wb")
    server = subprocess.Popen(cli_command(*shlex.split(command)[1:]), cwd=walked.root,
                              env=walked.env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return server.poll() is not None

    wait_for(ready, 180, "flywheel serve to become ready")
    example = httpx.get(f"{url}/docs.json").json()["components"]["schemas"]["Record"]["example"]
    for _ in range(5):
        walked.answers.append(httpx.post(f"{url}/predict", json=[example]))
    time.sleep(2.5)  # past serve.inference_log_roll_seconds: the rows are in the log
    return server


def result(walk: Walk, command: str) -> subprocess.CompletedProcess[str]:
    done = walk.done[command]
    assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_walkthrough_is_the_readme_section() -> None:
    assert readme_commands() == ["flywheel pull-data", "flywheel run", "flywheel status",
                                 "flywheel run --force", "flywheel serve &", "flywheel monitor"]


@pytest.mark.parametrize("command", ["flywheel pull-data", "flywheel run",
                                     "flywheel run --force"])
def test_the_happy_path_prints_only_what_the_user_needs(walk: Walk, command: str) -> None:
    done = result(walk, command)
    printed = done.stdout + done.stderr
    for what, pattern in NOISE.items():
        found = re.search(pattern, printed)
        assert found is None, f"{command} printed {what}: {found.group(0)!r}\n{printed[-4000:]}"


def test_the_first_version_is_champion_and_not_dirty(walk: Walk) -> None:
    info = json.loads(subprocess.run(
        cli_command("status", "--json"), cwd=walk.root, env=walk.env, capture_output=True,
        text=True, timeout=300, check=True).stdout)
    champion = info["champion"]
    assert champion["version"] == "1"
    assert re.fullmatch(r"[0-9a-f]{40}", champion["git_commit"]), champion["git_commit"]
    assert "flywheel-churn" in result(walk, "flywheel status").stdout


def test_a_retrain_on_unchanged_inputs_registers_nothing(walk: Walk) -> None:
    from mlflow import MlflowClient

    done = result(walk, "flywheel run --force")
    assert "identical to v1 (the champion), not registered" in done.stdout, done.stdout
    uri = f"sqlite:///{walk.root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert [str(v.version) for v in client.search_model_versions(f"name='{MODEL}'")] == ["1"]


def test_the_service_answers_the_swagger_example(walk: Walk) -> None:
    assert [a.status_code for a in walk.answers] == [200] * 5
    assert {a.json()[0]["model_version"] for a in walk.answers} == {"1"}


def test_the_monitor_page_renders_the_served_traffic(walk: Walk, tmp_path: Path) -> None:
    result(walk, "flywheel monitor")
    page = walk.root / "logs" / "monitor" / MODEL / "report.html"  # one folder per model
    assert f"logs/monitor/{MODEL}/report.html" in (REPO / "README.md").read_text()
    png = tmp_path / "monitor.png"
    dom = render(page.as_uri(), png)
    assert MODEL in dom and "tenure" in dom, dom[:3000]
    assert drawn_share(png) > 0.02
