"""`flywheel deploy`: create the work pools prefect.yaml names, then `prefect deploy --all`.

prefect.yaml stays the one description of the deployments; this only adds what `prefect
deploy` expects to exist already (the pools) and runs it from the project root, so the
deployments record that folder as where workers run the flow.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import yaml

from flywheel.errors import ConfigError

log = logging.getLogger(__name__)
POOL_TYPE = "process"


def work_pools(prefect_file: Path) -> list[str]:
    """The pool names prefect.yaml's deployments use, in order of first use."""
    if not prefect_file.is_file():
        raise ConfigError(f"{prefect_file}: not found (run flywheel deploy in the project root)")
    config = yaml.safe_load(prefect_file.read_text()) or {}
    names = [d.get("work_pool", {}).get("name") for d in config.get("deployments") or []]
    return list(dict.fromkeys(n for n in names if n))


def ensure_work_pools(names: list[str]) -> list[str]:
    """Create each missing pool as a process pool; return the ones created."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    missing = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_work_pool(name)
            except ObjectNotFound:
                missing.append(name)
    for name in missing:
        _prefect("work-pool", "create", name, "--type", POOL_TYPE)
    return missing


def deploy(root: Path) -> list[str]:
    """Pools first, then every deployment in prefect.yaml; returns the pools created."""
    created = ensure_work_pools(work_pools(root / "prefect.yaml"))
    _prefect("--no-prompt", "deploy", "--all", cwd=root)
    return created


def _prefect(*args: str, cwd: Path | None = None) -> None:
    """The Prefect CLI of this environment; its own message is the error when it fails."""
    prefect = Path(sys.executable).with_name("prefect")
    done = subprocess.run([str(prefect), *args], cwd=cwd, capture_output=True, text=True)
    log.debug("prefect %s: %s", " ".join(args), done.stdout)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ConfigError(f"`prefect {' '.join(args)}` failed: {last[0]}")
