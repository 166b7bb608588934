"""A throwaway copy of the project, as a fresh clone has it, for benchmarks to run `flywheel` in."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPY = ("params.yaml", "dvc.yaml", "data.dvc", ".dvcignore", "specs", ".dvc/config", "data")


def copy_project(workdir: Path) -> tuple[Path, dict[str, str]]:
    """The copy and the environment for a fresh process in it: own Prefect home and MLflow store."""
    project = workdir / "project"
    for name in COPY:
        source, target = REPO / name, project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    env = os.environ | {
        "FLYWHEEL_ROOT": str(project),
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "DVC_SITE_CACHE_DIR": str(workdir / "dvc-site"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return project, env
