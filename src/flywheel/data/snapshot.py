"""Snapshots of `data/` in DVC: what a registered version was trained on, and bringing it back.

Before a model version is registered, the exact `data/` it was trained on is versioned as
`dvc add data` + `dvc push` would: into the cache, `data.dvc` updated to name it, and pushed to
the default remote. The version records the `.dir` hash and the `data.dvc` text, so any version's
table can be checked out later, byte for byte, even on another clone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flywheel.atomic import write_atomically
from flywheel.data.materialize import DATA_DIR, DATA_DVC
from flywheel.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    md5: str  # DVC's hash of data/ (a `.dir` hash): what `dvc checkout` needs
    dvc_file: str  # the text of data.dvc naming it


def is_tracked(root: Path, data_path: Path) -> bool:
    """Whether `data_path` lies in the folder `data.dvc` versions."""
    return (root / DATA_DVC).is_file() and data_path.resolve().is_relative_to(
        (root / DATA_DIR).resolve()
    )


def snapshot(root: Path) -> Snapshot:
    """Version `data/` as it is now (cache, data.dvc, default remote); a failed push is an error.

    A registered version whose data cannot be brought back would break the promise that every
    version can be reproduced, so an unreachable remote stops the run before registering.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        # DVC's "To track the changes with git, run: git add data.dvc" hint, printed at the
        # end of a run even when data.dvc did not change: the README says when to commit it.
        repo.scm_context.quiet = True
        try:
            repo.add(DATA_DIR)
            repo.push(targets=[DATA_DVC])
        except DvcException as exc:
            raise DataError(
                f"{root / DATA_DIR}: could not version the data before registering "
                f"({type(exc).__name__}: {exc}); check the DVC remote (`dvc remote list`)"
            ) from exc
    text = (root / DATA_DVC).read_text()
    return Snapshot(md5=_md5_of(text), dvc_file=text)


def restore(root: Path, dvc_file: str) -> str | None:
    """Make `data/` the snapshot `dvc_file` names, from the cache or the remote.

    The current `data/` goes into the cache first, so replacing it loses nothing; its hash is
    returned for the caller to print
    (None when there was none). If the snapshot cannot be fetched, `data/` and `data.dvc`
    stay as they were.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dvc_path = root / DATA_DVC
    before_text = dvc_path.read_text()
    with Repo(str(root)) as repo:
        out = repo.stage.load_one(DATA_DVC).outs[0]
        kept = None
        if out.exists:
            out.save()  # hash data/ as it is now, and keep it in the cache
            out.commit()
            kept = str(out.hash_info.value)
    write_atomically(dvc_path, lambda p: p.write_text(dvc_file))
    try:
        with Repo(str(root)) as repo:
            repo.fetch(targets=[DATA_DVC])  # only warns when something is missing
            if not _in_cache(repo.stage.load_one(DATA_DVC).outs[0]):
                raise DataError("missing from the cache after fetching")
            repo.checkout(targets=[DATA_DVC], force=True)
    except (DvcException, DataError) as exc:
        write_atomically(dvc_path, lambda p: p.write_text(before_text))
        raise DataError(
            f"data {_md5_of(dvc_file)} is neither in the DVC cache nor on the remote "
            f"({type(exc).__name__}: {exc}); data/ was left as it was"
        ) from exc
    return kept


def _in_cache(out: Any) -> bool:
    """Whether every object of `out` (the `.dir` listing and each file) is in the local cache."""
    from dvc_data.hashfile.tree import Tree

    obj = out.get_obj()
    if obj is None:
        return False
    if not isinstance(obj, Tree):
        return bool(out.cache.exists(obj.hash_info.value))
    return all(out.cache.exists(info.value) for _, _, info in obj)


def recorded_md5(root: Path) -> str | None:
    """The `.dir` hash data.dvc names now (None without a data.dvc): which data is current."""
    path = root / DATA_DVC
    return _md5_of(path.read_text()) if path.is_file() else None


def _md5_of(dvc_file: str) -> str:
    outs = (yaml.safe_load(dvc_file) or {}).get("outs") or [{}]
    md5 = outs[0].get("md5")
    if not md5:
        raise DataError(f"{DATA_DVC}: no md5 in its outs; expected what `dvc add data` writes")
    return str(md5)
