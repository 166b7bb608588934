"""A retrain that produced the very same model as the champion is not registered again.

Same data, params, code and seed give a byte-identical model file (every candidate is seeded);
registering it would add a version that differs from an existing one only in its number, and
the gate would then judge a model against itself. The model file's SHA-256 is recorded on every
version (`flywheel.model_file_sha256`; the digest of the logged folder cannot serve, since MLflow
writes a fresh run id and time into it) and looked up before logging anything.
"""

from __future__ import annotations

from typing import Any

from flywheel.registry.store import TAG_PREFIX

FILE_DIGEST_TAG = f"{TAG_PREFIX}model_file_sha256"


def identical_version(client: Any, name: str, sha256: str) -> Any | None:
    """The newest registered version of `name` whose model file has this digest, or None."""
    from mlflow.exceptions import MlflowException

    quoted = name.replace("'", "''")
    try:
        versions = client.search_model_versions(f"name = '{quoted}'")
    except MlflowException:  # no such model yet
        return None
    same = [v for v in versions if (v.tags or {}).get(FILE_DIGEST_TAG) == sha256]
    return max(same, key=lambda v: int(v.version), default=None)


def not_registered(name: str, twin: Any, before: str | None) -> dict[str, Any]:
    """promote's decision for a model identical to the champion `twin`: nothing registered,
    nothing moved."""
    return {
        "model_name": name,
        "version": str(twin.version),
        "run_id": twin.run_id,
        "promoted": False,
        "reason": f"identical to v{twin.version} (the champion), not registered: the retrain "
                  "produced the same model file (same data, params, code and seed)",
        "identical_to": str(twin.version),
        "champion_before": before,
        "champion_after": before,
        "checks": [],
        "numbers": {},
    }
