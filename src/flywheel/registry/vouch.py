"""Writing signed verdicts onto versions: by the pipeline, by rollbacks, and by an admin.

`sign` records a verdict the caller has just reached (registration, the gate, a rollback).
`vouch` is the admin's command for versions that have no valid signature (a registry from
before signing, or a key that was lost): it re-hashes the files as the artifact store holds
them now, refuses if they differ from the recorded digest, and signs that digest. It is the
one place a human asserts "these files are ours", so it says what it signed.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from flywheel.errors import RegistryError
from flywheel.registry import store
from flywheel.registry.integrity import DIGEST_TAG, check_folder, tree_sha256
from flywheel.registry.signing import (
    PROMOTED,
    REGISTERED,
    SIGNATURE_TAG,
    VERDICTS,
    Keyring,
    ensure_keyring,
)
from flywheel.settings import Settings

log = logging.getLogger(__name__)


def sign(client: Any, keyring: Keyring, name: str, version: str, sha256: str, verdict: str) -> None:
    """Put the signed record of (name, version, sha256, verdict) on the version."""
    value = keyring.sign(name, str(version), sha256, verdict)
    client.set_model_version_tag(name, str(version), SIGNATURE_TAG, value)


def sign_verdict(client: Any, keyring: Keyring, version: Any, verdict: str) -> None:
    """Re-sign a version already verified by the caller with a new verdict (same digest)."""
    sign(client, keyring, version.name, str(version.version), version.tags[DIGEST_TAG], verdict)


def vouch(
    settings: Settings, model_name: str, number: str, verdict: str | None = None
) -> dict[str, Any]:
    """`flywheel sign --version N [--verdict V]`: sign a version's current files after a check.

    The verdict defaults to `promoted` for the versions `champion` and `previous` point at
    (so an older registry keeps serving and can roll back) and `registered` otherwise.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if verdict is not None and verdict not in VERDICTS:
        raise RegistryError(f"--verdict {verdict!r}: expected one of {', '.join(sorted(VERDICTS))}")
    client = store.connect(settings)
    try:
        version = client.get_model_version(model_name, number)
    except MlflowException as exc:
        raise RegistryError(f"{model_name!r} has no version {number!r}") from exc
    recorded = (version.tags or {}).get(DIGEST_TAG)
    with tempfile.TemporaryDirectory(prefix="flywheel-vouch-") as scratch:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=store.model_uri(model_name, number), dst_path=scratch
            )
        )
        if recorded:
            check_folder(local, recorded, f"{model_name} version {number}", "the artifact store")
        sha256 = recorded or tree_sha256(local)
    chosen = verdict or _default_verdict(client, model_name, number)
    keyring = ensure_keyring(settings.signing_key)
    if not recorded:
        client.set_model_version_tag(model_name, number, DIGEST_TAG, sha256)
    sign(client, keyring, model_name, number, sha256, chosen)
    log.warning(
        "signed %s version %s as %r (files %s…, key %s) on an admin's word",
        model_name,
        number,
        chosen,
        sha256[:12],
        keyring.signing_id,
    )
    return {
        "model_name": model_name,
        "version": number,
        "verdict": chosen,
        "model_sha256": sha256,
        "key_id": keyring.signing_id,
    }


def _default_verdict(client: Any, name: str, number: str) -> str:
    for alias in (store.CHAMPION, store.PREVIOUS):
        current = store.version_by_alias(client, name, alias)
        if current is not None and str(current.version) == number:
            return PROMOTED
    return REGISTERED
