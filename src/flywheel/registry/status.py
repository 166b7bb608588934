"""What is serving and what came before it; moving back when the new champion misbehaves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flywheel.errors import RegistryError
from flywheel.registry import store
from flywheel.registry.integrity import verify_version
from flywheel.registry.lineage import UNKNOWN
from flywheel.settings import Settings


def registry_status(settings: Settings, model_name: str) -> dict[str, Any]:
    """`champion` and `previous` with their test metrics and lineage (None when unset)."""
    client = store.connect(settings)
    return {
        "model_name": model_name,
        "champion": _describe(client, store.version_by_alias(client, model_name, store.CHAMPION)),
        "previous": _describe(client, store.version_by_alias(client, model_name, store.PREVIOUS)),
    }


def rollback(settings: Settings, model_name: str) -> dict[str, Any]:
    """Point `champion` at `previous`; the demoted version keeps a tag saying why it left.

    `previous` is removed afterwards, so a second rollback refuses instead of flip-flopping
    between two versions.
    """
    client = store.connect(settings)
    champion = store.version_by_alias(client, model_name, store.CHAMPION)
    previous = store.version_by_alias(client, model_name, store.PREVIOUS)
    if previous is None:
        raise RegistryError(
            f"{model_name!r} has no version with alias 'previous' to roll back to "
            f"(champion is {champion.version if champion else 'unset'})"
        )
    verify_version(previous)  # never move the alias onto files that were altered since
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


def describe_version(client: Any, version: Any) -> dict[str, Any]:
    """A version's test metrics and lineage, as the pipeline stored them with it."""
    run = client.get_run(version.run_id) if version.run_id else None
    metrics = {
        k.removeprefix("test_"): float(v)
        for k, v in (run.data.metrics if run else {}).items()
        if k.startswith("test_")
    }
    tags = version.tags or {}
    return {
        "name": version.name,
        "version": str(version.version),
        "metrics": metrics,
        "git_commit": tags.get(f"{store.TAG_PREFIX}git_commit", UNKNOWN),
        "data_md5": tags.get(f"{store.TAG_PREFIX}data_md5", UNKNOWN),
        "candidate": tags.get(f"{store.TAG_PREFIX}candidate", UNKNOWN),
        "trained_at": tags.get(f"{store.TAG_PREFIX}trained_at") or _run_start(run, version),
        "gate_reason": tags.get(f"{store.TAG_PREFIX}gate.reason", ""),
    }


def _run_start(run: Any, version: Any) -> str:
    """When the run that logged the model began; registration time only if there is no run."""
    millis = run.info.start_time if run is not None else version.creation_timestamp
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat()


def _describe(client: Any, version: Any) -> dict[str, Any] | None:
    return None if version is None else describe_version(client, version)
