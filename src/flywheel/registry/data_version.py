"""`flywheel data checkout --version N`: the table behind a registered version, back in data/.

The version's tags say which data it was trained on; `data.snapshot.restore` puts it back.
"""

from __future__ import annotations

import logging
from typing import Any

import yaml

from flywheel.data.dvc_text import UnsafeDvcText, checked_dvc_text
from flywheel.errors import DataError, RegistryError
from flywheel.settings import Settings

log = logging.getLogger(__name__)


def checkout_version(current: Settings, name: str, version: str) -> dict[str, Any]:
    """Restore the data a version was trained on; returns its md5 and what it replaced."""
    from mlflow.exceptions import MlflowException

    from flywheel.data.snapshot import restore
    from flywheel.registry import store

    try:
        tags = store.connect(current).get_model_version(name, version).tags or {}
    except MlflowException as exc:
        raise RegistryError(f"{name!r} has no version {version!r} ({exc.error_code})") from exc
    md5 = tags.get(f"{store.TAG_PREFIX}data_md5", "")
    recorded = tags.get(f"{store.TAG_PREFIX}data_dvc") or _dvc_file_for(md5)
    if recorded is None:
        raise DataError(
            f"{name} version {version} was trained on a table outside data.dvc (md5 "
            f"{md5 or 'unknown'}); only data versioned in data/ can be checked out"
        )
    try:  # a registry tag is input: it may name only data/ (dvc_text.py)
        dvc_file = checked_dvc_text(recorded)
    except UnsafeDvcText as exc:
        raise DataError(
            f"{name} version {version}: tag {store.TAG_PREFIX}data_dvc refused ({exc}); "
            "data/ and data.dvc left as they are"
        ) from None
    replaced = restore(current.root, dvc_file)
    log.info("data/ restored to %s for %s version %s", md5, name, version)
    return {"model_name": name, "md5": md5, "replaced": replaced}


def _dvc_file_for(md5: str) -> str | None:
    """data.dvc naming a `.dir` hash, for versions that recorded only the hash."""
    if not md5.endswith(".dir"):
        return None
    return yaml.safe_dump({"outs": [{"md5": md5, "hash": "md5", "path": "data"}]})
