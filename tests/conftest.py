"""Shared fixtures: the real config, shrunk, inside a throwaway copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from click.testing import Result

if TYPE_CHECKING:
    import pandas as pd

    from flywheel.config import Params
    from flywheel.data.spec import DatasetSpec

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = (
    "params.yaml",
    "dvc.yaml",
    "data.dvc",
    ".dvcignore",
    "specs",
    ".dvc/config",
    ".dvc/plots",
    "infra/dvc",
    ".dvc/.gitignore",
    ".gitignore",
)
FLYWHEEL = Path(sys.executable).with_name("flywheel")  # the console script of this environment
# A bound, not an expectation: a promote took over 300 s with the 2-core machine at a load of 20.
CLI_TIMEOUT_S = 900

# Keep every tool's state inside the test session, and quiet when offline.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_AUTHOR_NAME", "flywheel-tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@flywheel.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "flywheel-tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@flywheel.invalid")


@pytest.fixture(scope="session", autouse=True)
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signing key for the session, outside any project; every process started inherits
    it (FLYWHEEL_SIGNING_KEY_FILE), so what a test signs, the services it starts verify."""
    from flywheel.registry.signing import ensure_keyring

    path = tmp_path_factory.mktemp("signing") / "signing.key"
    ensure_keyring(path)
    os.environ["FLYWHEEL_SIGNING_KEY_FILE"] = str(path)
    return path


def require_program(name: str) -> str:
    """The path of a system program a test starts for real, or a skip that says why.

    `FLYWHEEL_REQUIRE_SYSTEM_TOOLS=1` (set by .ci/run) turns the skip into a failure, so CI
    never passes by skipping what `infra/system/install-packages.sh` should have installed.
    """
    if os.path.isabs(name) and os.access(name, os.X_OK):
        return name
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed (run infra/system/install-packages.sh)"
    if os.environ.get("FLYWHEEL_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def shrink_params(path: Path, **overrides: dict) -> None:
    """The real params.yaml with fewer epochs and resamples, so a run takes seconds."""
    params = yaml.safe_load(path.read_text())
    params["train"]["mlp"]["max_epochs"] = 15
    params["train"]["hgb"]["max_iter"] = 60
    params["promote"]["bootstrap"]["resamples"] = 300
    for section, values in overrides.items():
        _merge(params[section], values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _merge(into: dict, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def make_project(
    dest: Path,
    *,
    params: Mapping[str, dict] | None = None,
    extra: Iterable[str] = (),
    data: bool = True,
) -> Path:
    """A git repository holding the project's config files and the raw data, as a clone has.

    `params` overrides sections of the shrunk params.yaml (see `shrink_params`); `extra` names
    more repo paths a test's clone needs (the flows, prefect.yaml, the source DVC hashes);
    `data=False` leaves out the raw table, as a fresh clone before `flywheel pull-data`.
    Everything is committed, so lineage reads a clean commit.
    """
    dest.mkdir(parents=True, exist_ok=True)
    pulled = data and (REPO / "data").is_dir()  # before `flywheel pull-data`: tests skip alone
    for name in [*PROJECT_FILES, *extra, *(("data",) if pulled else ())]:
        source = REPO / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    shrink_params(dest / "params.yaml", **dict(params or {}))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "commit", "-qm", "project"], cwd=dest, check=True)
    return dest


def use_project(mp: pytest.MonkeyPatch, root: Path, *, chdir: bool = False) -> None:
    """Point settings, DVC and MLflow at `root` alone: its own store, its own DVC site cache."""
    mp.setenv("FLYWHEEL_ROOT", str(root))
    mp.setenv("DVC_SITE_CACHE_DIR", str(root.parent / "dvc-site"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.delenv("FLYWHEEL_TRACKING_URI", raising=False)
    if chdir:
        mp.chdir(root)


@contextmanager
def project_in_use(root: Path, *, chdir: bool = False, **env: str) -> Iterator[Path]:
    """`use_project` for a module- or session-scoped fixture (no function-scoped monkeypatch);
    `env` sets more variables for as long as the fixture lives."""
    with pytest.MonkeyPatch.context() as mp:
        use_project(mp, root, chdir=chdir)
        for name, value in env.items():
            mp.setenv(name, value)
        yield root


def cli_command(*args: str) -> list[str]:
    """`flywheel ARGS` as a user types it: the installed console script, not `python -m`."""
    return [str(FLYWHEEL), *args]


def cli_env(root: Path, base: Mapping[str, str] | None = None, **env: str) -> dict[str, str]:
    """The CLI's environment: `base` (default: this process's) with FLYWHEEL_ROOT and `env`."""
    return {**(os.environ if base is None else base), "FLYWHEEL_ROOT": str(root), **env}


def run_cli(
    root: Path,
    *args: str,
    base: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = CLI_TIMEOUT_S,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """`flywheel ARGS` in its own process for the project at `root` (run from `cwd`, default
    `root`), with the variables `env` set: the exit code and the one-line stderr are what a user
    sees. The timeout is a bound on a loaded shared machine, not an expectation."""
    return subprocess.run(
        cli_command(*args),
        cwd=cwd or root,
        env=cli_env(root, base, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invoke_cli(*args: str) -> Result:
    """The same CLI called in this process through Typer's runner: spares a process's ~15 s of
    interpreter and import start-up where the test does not need the process boundary."""
    from typer.testing import CliRunner

    from flywheel.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh project root with its own MLflow store; settings read it from FLYWHEEL_ROOT."""
    root = make_project(tmp_path / "project")
    use_project(monkeypatch, root, chdir=True)
    yield root


@pytest.fixture(scope="session")
def params() -> Params:
    """The repository's params.yaml as shipped (not shrunk)."""
    from flywheel.config import load_params

    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="session")
def spec(params: Params) -> DatasetSpec:
    """The default dataset's spec."""
    from flywheel.data.spec import load_spec

    return load_spec(REPO / params.data.spec)


@pytest.fixture(scope="session")
def default_table(spec: DatasetSpec) -> pd.DataFrame:
    """The shipped default table as every step reads it (`read_table`), materialized first if
    a checkout lacks it; read once per session."""
    from flywheel.data.io import read_table
    from flywheel.data.materialize import ensure_raw_data

    if not (REPO / spec.path).is_file():
        ensure_raw_data(REPO)
    return read_table(REPO / spec.path)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One Prefect test server for the whole session (~20 s to start here); yields its API URL.

    Subprocesses (the CLI as a user runs it) reach it through `PREFECT_API_URL`. Every module
    that needs a Prefect API uses this one (under pytest-xdist: one per worker). The start-up
    bound is generous: on a shared 2-core machine under heavy load it has taken over 2 minutes.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield str(PREFECT_API_URL.value())
