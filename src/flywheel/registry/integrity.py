"""A SHA-256 of each registered model's files, recorded at registration and checked before load.

Loading a pyfunc model unpickles it, so anyone who can write to the artifact store could run
code in the service, in batch scoring or in a rollback. The digest goes on the model version
as a tag next to its lineage, and every load first downloads the version's files, hashes them,
and loads exactly the files it hashed. A version without a digest or with a different one is
refused.

The registry is not trusted either: a registry writer could register a pickle tagged with its
own digest. So before anything is downloaded, the version's signature (signing.py: name,
version, digest and verdict under a key kept outside the registry) is checked, and the verdict
must be one the caller accepts (only `promoted`/`forced` may be champion).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flywheel.errors import RegistryError
from flywheel.registry.signing import SERVABLE, SIGNATURE_TAG, Keyring, load_keyring
from flywheel.registry.store import TAG_PREFIX, model_uri

log = logging.getLogger(__name__)

DIGEST_TAG = f"{TAG_PREFIX}model_sha256"
# Written by MLflow itself into a `models:/NAME/VERSION` download (the name and version): not
# part of what was logged, so not part of the digest.
NOT_HASHED = frozenset({"registered_model_meta"})


class IntegrityError(RegistryError):
    """A model version's files are not the ones registered."""


class SignatureRefused(IntegrityError):
    """A version's signed record is missing, forged, or its verdict is not one accepted here."""


def file_sha256(path: Path) -> str:
    """One file's SHA-256, read in chunks (a model file can be large)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def tree_sha256(folder: Path) -> str:
    """One digest over every file's relative path and content, independent of listing order."""
    lines = []
    files = (p for p in folder.rglob("*") if p.is_file())
    for path in sorted(p for p in files if p.relative_to(folder).as_posix() not in NOT_HASHED):
        lines.append(f"{path.relative_to(folder).as_posix()}\t{file_sha256(path)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def digest_of(artifact_uri: str) -> str:
    """The digest of a logged model's files as the artifact store holds them now."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="flywheel-digest-") as scratch:
        local = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=scratch)
        return tree_sha256(Path(local))


def verified_copy(
    version: Any, dest: Path, accept: frozenset[str] = SERVABLE, keyring: Keyring | None = None
) -> Path:
    """Download a version's files into `dest` and return them only if their signed digest
    matches; the signature is checked before anything is downloaded."""
    import mlflow.artifacts

    name, number = version.name, str(version.version)
    expected = (version.tags or {}).get(DIGEST_TAG)
    if not expected:
        raise IntegrityError(
            f"{name} version {number} has no recorded SHA-256 ({DIGEST_TAG}); refusing to load "
            "a model whose files cannot be checked (register it again with `flywheel run`)"
        )
    check_signature(version, accept, keyring)
    uri = model_uri(name, number)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    check_folder(local, expected, f"{name} version {number}", "the artifact store")
    return local


def check_signature(
    version: Any, accept: frozenset[str] = SERVABLE, keyring: Keyring | None = None
) -> str:
    """The version's signed verdict, or `SignatureRefused` (one line) when it cannot be trusted.

    `keyring` defaults to the one the settings name (FLYWHEEL_SIGNING_KEY_FILE).
    """
    from flywheel.errors import ConfigError

    name, number = version.name, str(version.version)
    tags = version.tags or {}
    try:
        ring = keyring or load_keyring(_settings_key())
        verdict = ring.verdict_of(
            name, number, str(tags.get(DIGEST_TAG, "")), tags.get(SIGNATURE_TAG)
        )
    except (ValueError, ConfigError) as exc:
        raise SignatureRefused(
            f"{name} version {number}: {exc}; refusing to load it (a registry writer may have "
            "registered it; if an admin vouches for its files: `flywheel sign --version "
            f"{number}`)"
        ) from None
    if verdict not in accept:
        raise SignatureRefused(
            f"{name} version {number} is signed as {verdict!r}, not {' or '.join(sorted(accept))}; "
            "refusing it here (promote it with `flywheel promote --version "
            f"{number}`)"
        )
    return verdict


def _settings_key() -> Path:
    from flywheel.settings import settings

    return settings().signing_key


def check_folder(folder: Path, expected: str, what: str, where: str) -> None:
    """Raise `IntegrityError` unless `folder` hashes to `expected` (`where` held the files)."""
    actual = tree_sha256(folder)
    if actual != expected:
        raise IntegrityError(
            f"{what}: model files do not match the SHA-256 recorded at registration "
            f"(expected {expected[:12]}…, found {actual[:12]}…); {where} was altered, "
            "refusing to load it"
        )


def verify_version(version: Any, accept: frozenset[str] = SERVABLE) -> None:
    """Check a version's signature and files without loading them (before moving an alias)."""
    with tempfile.TemporaryDirectory(prefix="flywheel-verify-") as scratch:
        verified_copy(version, Path(scratch), accept)


def load_verified(
    version: Any, suppress_warnings: bool = False, accept: frozenset[str] = SERVABLE
) -> Any:
    """The pyfunc model of a version, loaded from the very files whose signed digest was
    checked; by default only a version signed fit to serve (promoted or forced)."""
    import mlflow.pyfunc

    scratch = Path(tempfile.mkdtemp(prefix="flywheel-load-"))
    try:
        return mlflow.pyfunc.load_model(
            str(verified_copy(version, scratch, accept)), suppress_warnings=suppress_warnings
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
