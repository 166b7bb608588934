"""What is serving and what came before it; moving back when the new champion misbehaves."""

from __future__ import annotations

from typing import Any

from flywheel.errors import RegistryError
from flywheel.registry import store
from flywheel.registry.integrity import IntegrityError, check_signature, verify_version
from flywheel.registry.quickread import version_record
from flywheel.registry.signing import ANY_VERDICT
from flywheel.settings import Settings


def registry_status(settings: Settings, model_name: str) -> dict[str, Any]:
    """`champion` and `previous` with their test metrics and lineage (None when unset).

    The project's own SQLite store is read directly (importing MLflow alone takes seconds);
    any other store goes through MLflow's client. An unknown model is an error either way.
    """
    from flywheel.registry import quickread

    found = quickread.read_status(settings.mlflow_uri, model_name)
    if found is not None:
        return found
    from mlflow.exceptions import MlflowException

    client = store.connect(settings)
    try:
        client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise quickread.unknown_model(model_name, settings.mlflow_uri) from exc
    return {
        "model_name": model_name,
        "champion": _describe(client, store.version_by_alias(client, model_name, store.CHAMPION)),
        "previous": _describe(client, store.version_by_alias(client, model_name, store.PREVIOUS)),
    }


def rollback(settings: Settings, model_name: str) -> dict[str, Any]:
    """Point `champion` at `previous`; the demoted version keeps a tag saying why it left.

    `previous` is removed afterwards, so a second rollback refuses instead of flip-flopping
    between two versions. `previous` must carry a valid signed `promoted`/`forced` verdict
    (checked before anything is downloaded); the demoted version is re-signed `rolled_back`,
    so a registry writer cannot move `champion` back onto it.
    """
    from flywheel.registry.signing import ROLLED_BACK, load_keyring
    from flywheel.registry.vouch import sign_verdict

    keyring = load_keyring(settings.signing_key)
    client = store.connect(settings)
    champion = store.version_by_alias(client, model_name, store.CHAMPION)
    previous = store.version_by_alias(client, model_name, store.PREVIOUS)
    if previous is None:
        raise RegistryError(
            f"{model_name!r} has no version with alias 'previous' to roll back to "
            f"(champion is {champion.version if champion else 'unset'})"
        )
    verify_version(previous)  # never onto unsigned files, or files altered since
    if champion is not None and _genuine(champion):  # never sign what we did not sign before
        sign_verdict(client, keyring, champion, ROLLED_BACK)
    client.set_registered_model_alias(model_name, store.CHAMPION, previous.version)
    client.delete_registered_model_alias(model_name, store.PREVIOUS)
    if champion is not None:
        client.set_model_version_tag(
            model_name,
            champion.version,
            f"{store.TAG_PREFIX}rolled_back",
            f"replaced by version {previous.version}",
        )
    return {
        "model_name": model_name,
        "champion": str(previous.version),
        "demoted": str(champion.version) if champion else None,
    }


def _genuine(version: Any) -> bool:
    try:
        check_signature(version, ANY_VERDICT)
    except IntegrityError:
        return False
    return True


def describe_version(client: Any, version: Any) -> dict[str, Any]:
    """A version's test metrics and lineage, as the pipeline stored them with it."""
    run = client.get_run(version.run_id) if version.run_id else None
    return version_record(
        version.name,
        str(version.version),
        dict(run.data.metrics) if run else {},
        dict(version.tags or {}),
        run.info.start_time if run is not None else version.creation_timestamp,
    )


def _describe(client: Any, version: Any) -> dict[str, Any] | None:
    return None if version is None else describe_version(client, version)
