"""A SHA-256 of each registered model's files, recorded at registration and checked before load.

Loading a pyfunc model unpickles it, so anyone who can write to the artifact store could run
code in the service, in batch scoring or in a rollback. The digest goes on the model version
as a tag next to its lineage (the registry is the trusted record; the artifact store is not),
and every load first downloads the version's files, hashes them, and loads exactly the files
it hashed. A version without a digest or with a different one is refused.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flywheel.errors import RegistryError
from flywheel.registry.store import TAG_PREFIX, model_uri

log = logging.getLogger(__name__)

DIGEST_TAG = f"{TAG_PREFIX}model_sha256"
CHUNK = 1 << 20
# Written by MLflow itself into a `models:/NAME/VERSION` download (the name and version): not
# part of what was logged, so not part of the digest.
NOT_HASHED = frozenset({"registered_model_meta"})


class IntegrityError(RegistryError):
    """A model version's files are not the ones registered."""


def tree_sha256(folder: Path) -> str:
    """One digest over every file's relative path and content, independent of listing order."""
    lines = []
    files = (p for p in folder.rglob("*") if p.is_file())
    for path in sorted(p for p in files if p.relative_to(folder).as_posix() not in NOT_HASHED):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
        lines.append(f"{path.relative_to(folder).as_posix()}\t{digest.hexdigest()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def digest_of(artifact_uri: str) -> str:
    """The digest of a logged model's files as the artifact store holds them now."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="flywheel-digest-") as scratch:
        local = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=scratch)
        return tree_sha256(Path(local))


def verified_copy(version: Any, dest: Path) -> Path:
    """Download a version's files into `dest` and return them only if their digest matches."""
    import mlflow.artifacts

    name, number = version.name, str(version.version)
    expected = (version.tags or {}).get(DIGEST_TAG)
    if not expected:
        raise IntegrityError(
            f"{name} version {number} has no recorded SHA-256 ({DIGEST_TAG}); refusing to load "
            "a model whose files cannot be checked (register it again with `flywheel run`)"
        )
    uri = model_uri(name, number)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    check_folder(local, expected, f"{name} version {number}", "the artifact store")
    return local


def check_folder(folder: Path, expected: str, what: str, where: str) -> None:
    """Raise `IntegrityError` unless `folder` hashes to `expected` (`where` held the files)."""
    actual = tree_sha256(folder)
    if actual != expected:
        raise IntegrityError(
            f"{what}: model files do not match the SHA-256 recorded at registration "
            f"(expected {expected[:12]}…, found {actual[:12]}…); {where} was altered, "
            "refusing to load it"
        )


def verify_version(version: Any) -> None:
    """Check a version's files without loading them (before moving an alias onto it)."""
    with tempfile.TemporaryDirectory(prefix="flywheel-verify-") as scratch:
        verified_copy(version, Path(scratch))


def load_verified(version: Any, suppress_warnings: bool = False) -> Any:
    """The pyfunc model of a version, loaded from the very files whose digest was checked."""
    import mlflow.pyfunc

    scratch = Path(tempfile.mkdtemp(prefix="flywheel-load-"))
    try:
        return mlflow.pyfunc.load_model(
            str(verified_copy(version, scratch)), suppress_warnings=suppress_warnings
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
