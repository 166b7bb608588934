"""The production path, rehearsed on this machine with settings alone.

One module fixture starts what a team shares: a throwaway PostgreSQL cluster (initdb in a temp
dir, loopback port), an S3 stand-in (moto's server), `mlflow server` on PostgreSQL with its
artifacts in S3, `prefect server` on PostgreSQL and a Prefect process worker. The project is
a clone whose DVC remote is the S3 bucket. The deployments are registered with
`prefect deploy --all` from the project's own prefect.yaml and the training deployment runs
through the worker; `flywheel serve` then serves the champion from that registry. Only
FLYWHEEL_*, MLFLOW_*, PREFECT_*, AWS_* settings and the DVC remote differ from a laptop run.
Everything started here is stopped in the fixture's teardown, also when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import cli_command, cli_env, make_project, require_program, run_cli
from tests.integration.serving.conftest import free_port, sample_records, wait_for

pytestmark = pytest.mark.slow

PG_BIN = Path("/usr/lib/postgresql/15/bin")
BUCKET = "flywheel"
MODEL = "flywheel-churn"
DEPLOYMENT = "flywheel-training/nightly"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 420
# The first champion is weak on purpose, so both racing runs beat it and race to promote.
# It still beats the prior baseline (ROC-AUC ~0.78, Brier below the prior's), so it is promoted.
WEAK = {
    "train": {"candidates": ["mlp"], "mlp": {"hidden_sizes": [2], "max_epochs": 2, "lr": 0.003}},
}
STRONG = {"train": {"candidates": ["logreg"]}}
CLONE = ("pipelines", "prefect.yaml")  # a clone as a team member has it: the flows too


@dataclass
class Stack:
    env: dict[str, str]  # what a user exports to point Flywheel at the shared services
    api_url: str
    s3: Any  # boto3 client on the stand-in
    projects: list[Path]


def _spawn(
    stack: ExitStack, name: str, args: list[str], env: dict[str, str], logs: Path, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """A server in its own process group, stopped (TERM twice, then KILL) when the stack ends."""
    log = (logs / f"{name}.log").open("wb")
    process = subprocess.Popen(
        args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
    )

    def stop() -> None:
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):  # a worker needs two TERMs
            if process.poll() is not None:
                break
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                continue
        log.close()

    stack.callback(stop)
    return process


def _healthy(url: str, process: subprocess.Popen[bytes], logs: Path, name: str) -> None:
    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"{name} exited: {(logs / f'{name}.log').read_text()[-3000:]}")
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, START_TIMEOUT_S, f"{name} at {url}")


def _postgres(stack: ExitStack) -> str:
    """A throwaway cluster with the `mlflow` and `prefect` databases; returns host:port."""
    require_program(str(PG_BIN / "initdb"))
    data = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
    stack.callback(shutil.rmtree, data, True)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres")
    port = free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "initdb"),
            "-D",
            str(data / "db"),
            "-A",
            "trust",
            "-U",
            "flywheel",
        ],
        **run,
    )
    options = f"-k {data} -c listen_addresses=127.0.0.1 -p {port}"
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data / "db"),
            "-o",
            options,
            "-l",
            str(data / "pg.log"),
            "-w",
            "start",
        ],
        **run,
    )
    stack.callback(
        subprocess.run,
        [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
        timeout=60,
    )
    for database in ("mlflow", "prefect"):
        subprocess.run(
            [
                str(PG_BIN / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "flywheel",
                database,
            ],
            **run,
        )
    return f"127.0.0.1:{port}"


def _s3(stack: ExitStack, env: dict[str, str], logs: Path) -> tuple[str, Any]:
    import boto3

    port = free_port()
    moto = _spawn(
        stack, "moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env, logs
    )
    url = f"http://127.0.0.1:{port}"
    _healthy(f"{url}/moto-api/", moto, logs, "moto")
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="rehearsal",
        aws_secret_access_key="rehearsal",
    )
    client.create_bucket(Bucket=BUCKET)
    return url, client


def _remote_on_s3(root: Path, s3_url: str, env: dict[str, str]) -> None:
    """The DVC remote moved to the bucket (a setting); promote pushes the data snapshot there."""
    dvc = [str(BIN / "dvc")]
    for args in (
        ["remote", "add", "-d", "-f", "shared", f"s3://{BUCKET}/dvc"],
        ["remote", "modify", "shared", "endpointurl", s3_url],
    ):
        subprocess.run([*dvc, *args], cwd=root, env=env, check=True, timeout=120)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "shared services"], cwd=root, check=True)


def _servers(
    stack: ExitStack, pg: str, env: dict[str, str], logs: Path, tmp: Path
) -> tuple[str, str]:
    """mlflow server and prefect server on PostgreSQL, started together (both take a while)."""
    mlflow_port, prefect_port = free_port(), free_port()
    mlflow = _spawn(
        stack,
        "mlflow",
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"postgresql://flywheel@{pg}/mlflow",
            "--artifacts-destination",
            f"s3://{BUCKET}/mlflow",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
        ],
        {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        logs,
        cwd=tmp,
    )
    prefect = _spawn(
        stack,
        "prefect-server",
        [
            str(BIN / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(prefect_port),
        ],
        {
            **env,
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://flywheel@{pg}/prefect",
            "PREFECT_HOME": str(tmp / "prefect-server-home"),
        },
        logs,
        cwd=tmp,
    )
    mlflow_url, api_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{prefect_port}/api"
    _healthy(f"{mlflow_url}/health", mlflow, logs, "mlflow")
    _healthy(f"{api_url}/health", prefect, logs, "prefect-server")
    return mlflow_url, api_url


def _deploy_and_work(stack: ExitStack, project: Path, env: dict[str, str], logs: Path) -> None:
    """Work pools, `prefect deploy --all` from the project's prefect.yaml, one process worker."""
    prefect = str(BIN / "prefect")
    for pool in ("default", "gpu"):
        subprocess.run(
            [prefect, "work-pool", "create", pool, "--type", "process"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    _deploy(project, env, "--all")
    _spawn(
        stack,
        "worker",
        [prefect, "worker", "start", "--pool", "default", "--type", "process"],
        env,
        logs,
        cwd=project,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("rehearsal")
    logs = tmp / "logs"
    logs.mkdir()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MLFLOW_", "FLYWHEEL_"))
    }
    base |= {
        "AWS_ACCESS_KEY_ID": "rehearsal",
        "AWS_SECRET_ACCESS_KEY": "rehearsal",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site"),
        "DO_NOT_TRACK": "true",
    }
    with ExitStack() as services:
        pg = _postgres(services)
        s3_url, s3 = _s3(services, base, logs)
        base["MLFLOW_S3_ENDPOINT_URL"] = s3_url
        mlflow_url, api_url = _servers(services, pg, base, logs, tmp)
        env = base | {
            "FLYWHEEL_TRACKING_URI": mlflow_url,
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(tmp / "prefect-client-home"),
            # One team, one registry, one signing key (a Secret in a cluster): every clone,
            # the worker and the service verify what the others signed.
            "FLYWHEEL_SIGNING_KEY_FILE": str(tmp / "team-secrets" / "signing.key"),
        }
        projects = [
            make_project(tmp / name, params=params, extra=CLONE)
            for name, params in (("first", WEAK), ("alice", STRONG), ("bob", STRONG))
        ]
        _remote_on_s3(projects[0], s3_url, env)
        _deploy_and_work(services, projects[0], env | {"FLYWHEEL_ROOT": str(projects[0])}, logs)
        yield Stack(env=env, api_url=api_url, s3=s3, projects=projects)


# --- helpers on the running stack -------------------------------------------------------------


def _deploy(project: Path, env: dict[str, str], *which: str) -> None:
    deployed = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", *which],
        cwd=project,
        env=env | {"FLYWHEEL_ROOT": str(project)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr


def _race_deployment(project: Path, env: dict[str, str]) -> str:
    """The nightly deployment under this clone's own name.

    prefect.yaml's pull step resolves `{{ $FLYWHEEL_ROOT }}` when deploying, so a deployment
    runs in the clone it was deployed from; each racing clone deploys its own.
    """
    name = f"nightly-{project.name}"
    text = (project / "prefect.yaml").read_text()
    (project / "prefect.yaml").write_text(text.replace("- name: nightly", f"- name: {name}"))
    _deploy(project, env, "--name", name)
    return f"flywheel-training/{name}"


def start_runs(stack: Stack, roots: list[Path], deployments: list[str] | None = None) -> list[str]:
    """Flow runs of the training deployments, one per project root, picked up by the worker."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: stack.api_url}),
        get_client(sync_client=True) as client,
    ):
        names = deployments or [DEPLOYMENT] * len(roots)
        ids = [client.read_deployment_by_name(name).id for name in names]
        return [
            str(
                client.create_flow_run_from_deployment(
                    deployment_id, job_variables={"env": {"FLYWHEEL_ROOT": str(root)}}
                ).id
            )
            for deployment_id, root in zip(ids, roots, strict=True)
        ]


def finished(stack: Stack, run_ids: list[str]) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def states() -> list[Any] | None:
        with (
            temporary_settings({PREFECT_API_URL: stack.api_url}),
            get_client(sync_client=True) as client,
        ):
            runs = [client.read_flow_run(run_id) for run_id in run_ids]
        return runs if all(r.state and r.state.is_final() for r in runs) else None

    return wait_for(states, RUN_TIMEOUT_S, f"flow runs {run_ids}")


def registry(stack: Stack) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(
        tracking_uri=stack.env["FLYWHEEL_TRACKING_URI"],
        registry_uri=stack.env["FLYWHEEL_TRACKING_URI"],
    )


def alias(stack: Stack, name: str) -> str | None:
    from flywheel.registry.store import version_by_alias

    found = version_by_alias(registry(stack), MODEL, name)
    return str(found.version) if found else None


def bucket_keys(stack: Stack, prefix: str) -> list[str]:
    pages = stack.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


# --- the rehearsal ----------------------------------------------------------------------------


def test_training_deployment_runs_through_the_worker(stack: Stack) -> None:
    first = stack.projects[0]
    assert bucket_keys(stack, "dvc/") == []  # nothing pushed the data before the run
    (run,) = finished(stack, start_runs(stack, [first]))
    assert run.state.is_completed(), run.state.message

    status = json.loads(run_cli(first, "status", "--json", base=stack.env).stdout)
    champion = status["champion"]
    assert champion["version"] == "1" and alias(stack, "champion") == "1"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=first, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert champion["git_commit"] == head
    version = registry(stack).get_model_version(MODEL, "1")
    assert version.tags["flywheel.prefect_flow_run_id"] == str(run.id)
    # promote pushed the data snapshot it recorded to the S3 remote: the `.dir` listing and
    # every file it names, in DVC's files/md5/xx/yyyy layout
    md5 = version.tags["flywheel.data_md5"]
    assert md5.endswith(".dir") and champion["data_md5"] == md5
    pushed = set(bucket_keys(stack, "dvc/"))
    listing = stack.s3.get_object(Bucket=BUCKET, Key=_remote_key(md5))["Body"].read()
    files = [entry["md5"] for entry in json.loads(listing)]
    assert files and {_remote_key(m) for m in [md5, *files]} <= pushed
    artifacts = bucket_keys(stack, "mlflow/")  # the model's files are in S3 too
    assert any(key.endswith("/MLmodel") for key in artifacts)
    assert any(key.endswith("/evaluation/metrics.json") for key in artifacts)


def _remote_key(md5: str) -> str:
    return f"dvc/files/md5/{md5[:2]}/{md5[2:]}"


def test_flywheel_serve_answers_from_the_shared_registry(stack: Stack, tmp_path: Path) -> None:
    from tests.integration.serving.conftest import Server, stop_server

    port = free_port()
    env = cli_env(
        stack.projects[0],
        stack.env,
        BENTOML_HOME=str(tmp_path / "bentoml"),
        FLYWHEEL_INFERENCE_LOG_DIR=str(tmp_path / "log"),
    )
    output = tmp_path / "serve.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            cli_command("serve", "--port", str(port)),
            cwd=stack.projects[0],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(
        url=f"http://127.0.0.1:{port}",
        process=process,
        home=tmp_path / "bentoml",
        log_dir=tmp_path / "log",
        output=output,
        tokens_file=stack.projects[0] / ".flywheel" / "tokens.json",
    )
    try:
        wait_for(lambda: _ready(server), START_TIMEOUT_S, f"flywheel serve:\n{server.logs()}")
        answer = server.client.post("/predict", json=sample_records()[0])
        assert answer.status_code == 200, answer.text
        (prediction,) = answer.json()
        assert prediction["model_version"] == "1"
        assert 0.0 <= prediction["probability"] <= 1.0
    finally:
        stop_server(server)


def _ready(server: Any) -> bool:
    if server.process.poll() is not None:
        pytest.fail(f"flywheel serve exited:\n{server.logs()}")
    try:
        return bool(server.client.get("/readyz", timeout=2).status_code == 200)
    except httpx.HTTPError:
        return False


def test_two_trainings_racing_leave_one_champion(stack: Stack) -> None:
    racers = stack.projects[1:]
    deployments = [_race_deployment(root, stack.env) for root in racers]
    runs = finished(stack, start_runs(stack, racers, deployments))

    decisions = [_decision(root, run) for root, run in zip(stack.projects[1:], runs, strict=True)]
    winners = [d for d in decisions if d.get("promoted")]
    (winner,) = winners  # exactly one promotion; the other explains why not
    (loser,) = [d for d in decisions if d is not winner]
    assert alias(stack, "champion") == winner["version"]
    assert alias(stack, "previous") == "1"
    assert f"moved from 1 to {winner['version']}" in loser["reason"]  # CAS or early check
    assert loser.get("champion_after", winner["version"]) == winner["version"]
    client = registry(stack)
    for version in client.search_model_versions(f"name='{MODEL}'"):
        # nothing half-registered: every version carries its verdict
        assert version.tags.get("flywheel.gate.verdict") in {"promoted", "rejected"}, version
    assert not client.search_registered_models(f"name='{MODEL}.promote-lock'")


def _decision(root: Path, run: Any) -> dict[str, Any]:
    """What promote decided in this run: its decision file, or the error that stopped it."""
    path = root / "artifacts/promote/decision.json"
    if run.state.is_completed():
        return dict(json.loads(path.read_text()))
    return {"promoted": False, "reason": run.state.message or ""}


def test_a_registry_switched_by_settings_alone_gets_a_champion(
    stack: Stack, tmp_path: Path
) -> None:
    """A project that ran on its local SQLite registry is pointed at the team's PostgreSQL-backed
    MLflow by FLYWHEEL_TRACKING_URI alone: dvc.lock says every step is up to date, but the
    configured registry lacks the version, so promote runs there; the run after that
    registers nothing and says which champion keeps serving."""
    from flywheel.registry.store import version_by_alias

    name = "flywheel-switch"
    root = make_project(  # with src/: DVC can tell which steps are up to date
        tmp_path / "switch", params={"promote": {"model_name": name}}, extra=(*CLONE, "src")
    )
    local = {
        k: v for k, v in stack.env.items() if k not in ("FLYWHEEL_TRACKING_URI", "PREFECT_API_URL")
    } | {"PREFECT_HOME": str(tmp_path / "prefect-home")}
    first = run_cli(root, "run", base=local)
    assert first.returncode == 0, first.stderr[-3000:]
    assert version_by_alias(registry(stack), name, "champion") is None

    switched = run_cli(root, "run", base=stack.env)
    assert switched.returncode == 0, switched.stderr[-3000:]
    champion = version_by_alias(registry(stack), name, "champion")
    assert champion is not None, switched.stdout
    decision = json.loads((root / "artifacts" / "promote" / "decision.json").read_text())
    assert decision["registry"] == stack.env["FLYWHEEL_TRACKING_URI"]

    again = run_cli(root, "run", base=stack.env, COLUMNS="200")
    assert again.returncode == 0, again.stderr[-3000:]
    flat = " ".join(again.stdout.split())
    assert f"{name} version {champion.version} keeps serving as champion" in flat, flat
