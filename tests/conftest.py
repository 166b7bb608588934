"""Shared fixtures: the real config, shrunk, inside a throwaway copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

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


def make_project(dest: Path) -> Path:
    """A git repository holding the project's config files and the raw data, as a clone has."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    shutil.copytree(REPO / "data", dest / "data") if (REPO / "data").is_dir() else None
    shrink_params(dest / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "commit", "-qm", "project"], cwd=dest, check=True)
    return dest


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh project root with its own MLflow store; settings read it from FLYWHEEL_ROOT."""
    root = make_project(tmp_path / "project")
    monkeypatch.setenv("FLYWHEEL_ROOT", str(root))
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(tmp_path / "dvc-site"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FLYWHEEL_TRACKING_URI", raising=False)
    monkeypatch.chdir(root)
    yield root


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
