"""prefect.yaml's deployments, registered and run the way a scheduler runs them.

The session's real Prefect server (reached only through PREFECT_API_URL; own PREFECT_HOME),
`flywheel deploy` in a fresh copy of the project, a real process worker started elsewhere
with no FLYWHEEL_ROOT, and `prefect deployment run`: the flow run completes, and Flywheel's
own log lines and the run-summary artifact with the promotion decision are readable through
the Prefect API.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, cli_command, make_project

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
DEADLINE_S = 480


def stop(proc: subprocess.Popen[bytes], signals: int = 1) -> None:
    """SIGTERM the process group (a process worker wants two), then SIGKILL what is left."""
    for _ in range(signals):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(1)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def start(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[dict[str, str]]:
    """The session's Prefect server as a user's shell sees it after exporting its URL.

    Sharing the server spares a second `prefect server start` (~20 s). Other modules register
    prefect.yaml's deployments on it too, so this one starts from a server with none of ours
    and no work pools (what `flywheel deploy` must create), and removes them when done, so a
    later module counts no run of ours as its own.
    """
    base = tmp_path_factory.mktemp("deployments")
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "FLYWHEEL_", "MLFLOW_"))
    }
    clean |= {
        "PREFECT_HOME": str(base / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_SITE_CACHE_DIR": str(base / "dvc-site"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env = clean | {"PREFECT_API_URL": prefect_server, "PREFECT_WORKER_QUERY_SECONDS": "2"}
    _forget_ours(env)
    try:
        yield env
    finally:
        _forget_ours(env)


def _forget_ours(env: dict[str, str]) -> None:
    """Delete prefect.yaml's deployments (their scheduled runs go with them), the automations
    their triggers created (deleting a deployment leaves those) and work pools."""
    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    names = {d["name"] for d in declared}
    pools = {d["work_pool"]["name"] for d in declared}
    triggers = {t["name"] for d in declared for t in d.get("triggers") or []}
    for automation in api(env, lambda c: c.read_automations()):
        if automation.name in triggers:
            api(env, lambda c, a=automation: c.delete_automation(a.id))
    for deployment in api(env, lambda c: c.read_deployments()):
        if deployment.name in names:
            api(env, lambda c, d=deployment: c.delete_deployment(d.id))
    for pool in api(env, lambda c: c.read_work_pools()):
        if pool.name in pools:
            api(env, lambda c, p=pool: c.delete_work_pool(p.name))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone: the flows and prefect.yaml too, params shrunk so a run takes seconds."""
    return make_project(
        tmp_path_factory.mktemp("clone") / "project",
        params={"train": {"candidates": ["logreg"]}, "promote": {"bootstrap": {"resamples": 100}}},
        extra=("pipelines", "prefect.yaml"),
    )


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def api(env: dict[str, str], call: Any) -> Any:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        return call(client)


def test_flywheel_deploy_creates_the_pools_and_registers_every_deployment(
    env: dict[str, str], project: Path
) -> None:
    done = cli(env, project, *cli_command("deploy"))
    assert done.returncode == 0, done.stderr + done.stdout
    assert "default" in done.stdout and "gpu" in done.stdout

    pools = api(env, lambda c: [p.name for p in c.read_work_pools()])
    assert {"default", "gpu"} <= set(pools)
    names = api(env, lambda c: sorted(d.name for d in c.read_deployments()))
    declared = yaml.safe_load((project / "prefect.yaml").read_text())["deployments"]
    assert names == sorted(d["name"] for d in declared)


def test_worker_runs_nightly_with_logs_and_summary_in_the_api(
    env: dict[str, str], project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "worker-cwd"  # the worker finds the project through the pull step
    elsewhere.mkdir()
    worker = start(
        [str(BIN / "prefect"), "worker", "start", "--pool", "default", "--type", "process"],
        env,
        elsewhere,
        tmp_path / "worker.log",
    )
    try:
        done = cli(env, project, str(BIN / "prefect"), "deployment", "run",
                   "flywheel-training/nightly")  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", done.stdout)
        assert found, done.stdout
        run = _wait_for_end(env, found.group(1), worker, tmp_path / "worker.log")
        # The flow-run process ships its last log batch after the run's final state; stopping
        # the worker first can end that process before it does.
        logs = _logs_once_flushed(env, run.id, "version 1 of flywheel-churn")
    finally:
        stop(worker, signals=2)
    assert run.state.is_completed(), (tmp_path / "worker.log").read_text()[-4000:]
    assert re.search(r"validated \d+ rows against .*: passed", logs), logs
    assert "version 1 of flywheel-churn: promoted" in logs, logs
    artifacts = api(env, lambda c: c.read_artifacts(artifact_filter=_artifact_filter(run.id)))
    summary = next(a for a in artifacts if a.key == "flywheel-run-summary")
    assert summary.type == "markdown"
    assert "version 1: **promoted to champion**" in summary.data
    assert "| promote |" in summary.data
    assert (project / "mlflow.db").is_file()  # the run happened in the project folder


def _wait_for_end(env: dict[str, str], run_id: str, worker: Any, log: Path) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        run = api(env, lambda c: c.read_flow_run(run_id))
        if run.state is not None and run.state.is_final():
            return run
        assert worker.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, f"flow run still {run.state}: {log.read_text()[-4000:]}"
        time.sleep(2)


def _logs_once_flushed(env: dict[str, str], run_id: Any, last_line: str) -> str:
    """The run's logs; the last batch can reach the API a little after the run's final state."""
    deadline = time.monotonic() + 30
    while True:
        logs = "\n".join(m.message for m in api(env, lambda c: c.read_logs(_log_filter(run_id))))
        if last_line in logs or time.monotonic() > deadline:
            return logs
        time.sleep(1)


def _log_filter(run_id: Any) -> Any:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    return LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))


def _artifact_filter(run_id: Any) -> Any:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    return ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
