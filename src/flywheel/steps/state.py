"""The one state both drivers share: DVC's lock and cache decide whether a step is up to date.

`dvc repro` records each stage it runs in `dvc.lock`. The Prefect flow asks DVC the same
question before each step (`dvc status STAGE`) and, after running one, records it as `dvc
repro` would (`dvc commit STAGE`: dvc.lock updated, outputs cached). So a step done by one driver
is not redone by the other, and an unchanged nightly run costs a few status checks.

Only the default dataset runs as the stages of dvc.yaml; another table (`--data FILE`) has no
stage, so every step runs. A project whose stages DVC cannot evaluate (no dvc.yaml, a dependency
missing such as `src/` of an installed package) also runs every step and records nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

SKIPPED = "skipped: up to date in dvc.lock"


def up_to_date(root: Path, stage: str) -> bool:
    """Whether DVC would skip `stage`: deps, params and outs as dvc.lock records them."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    if not (root / "dvc.lock").is_file():
        return False
    try:
        with Repo(str(root)) as repo:
            return not repo.status(targets=[stage])
    except DvcException as exc:
        log.debug("DVC cannot tell whether %s is up to date (%s); running it", stage, exc)
        return False


def record(root: Path, stage: str) -> bool:
    """Record a stage that just ran in dvc.lock and the cache, as `dvc repro` does."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    if not (root / "dvc.yaml").is_file():
        return False
    try:
        with Repo(str(root)) as repo:
            repo.commit(stage, force=True)
    except DvcException as exc:
        log.info("%s ran but is not recorded in dvc.lock (%s)", stage, exc)
        return False
    return True
