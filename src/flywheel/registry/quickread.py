"""Read the project's SQLite registry without importing MLflow, for a `status` under 2 s.

Importing MLflow costs 3-5 s here; `flywheel status` needs four small queries. This reads the
tables MLflow's SQLAlchemy store writes (registered_models, registered_model_aliases,
model_versions, model_version_tags, latest_metrics), read-only, so it never creates or
migrates a database. Any other store, or a schema this does not know, returns None and the
caller uses MLflow's client.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.errors import RegistryError
from flywheel.registry.busy import is_locked, registry_busy
from flywheel.registry.lineage import UNKNOWN
from flywheel.registry.store import CHAMPION, PREVIOUS, TAG_PREFIX

SQLITE_PREFIX = "sqlite:///"
BUSY_WAIT_S = 5.0  # how long a read waits for a writer's lock before saying the registry is busy


class UnknownModel(RegistryError):
    """No registered model of that name (before the first promote, or a mistyped --model)."""


def unknown_model(name: str, uri: str, known: list[str] | None = None) -> RegistryError:
    listed = f" (registered: {', '.join(known)})" if known else " (none registered yet)"
    return UnknownModel(
        f"no registered model {name!r} in {uri}{listed}; run `flywheel run` to register one, "
        "or pass --model NAME"
    )


def read_status(uri: str, model_name: str) -> dict[str, Any] | None:
    """Champion and previous as `registry_status` returns them, or None to use MLflow."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    db = Path(uri.removeprefix(SQLITE_PREFIX))
    if not db.is_file():
        raise unknown_model(model_name, uri)
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=BUSY_WAIT_S)) as conn:
            return _status(conn, uri, model_name)
    except sqlite3.DatabaseError as exc:
        if is_locked(exc):  # MLflow's client would wait on the same lock, then fail
            raise registry_busy(uri) from exc
        return None  # a schema this reader does not know: MLflow's client knows it


def _status(conn: sqlite3.Connection, uri: str, name: str) -> dict[str, Any]:
    known = [row[0] for row in conn.execute("SELECT name FROM registered_models ORDER BY name")]
    if name not in known:
        raise unknown_model(name, uri, known)
    return {
        "model_name": name,
        "champion": _aliased(conn, name, CHAMPION),
        "previous": _aliased(conn, name, PREVIOUS),
    }


def _aliased(conn: sqlite3.Connection, name: str, alias: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT v.version, v.run_id, v.creation_time FROM registered_model_aliases a "
        "JOIN model_versions v ON v.name = a.name AND v.version = a.version "
        "WHERE a.name = ? AND a.alias = ?",
        (name, alias),
    ).fetchone()
    if row is None:
        return None
    version, run_id, created = row
    tags = dict(
        conn.execute(
            "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
            (name, version),
        ).fetchall()
    )
    metrics = dict(
        conn.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,))
    )
    return version_record(name, str(version), metrics, tags, int(created))


def version_record(
    name: str, version: str, metrics: dict[str, float], tags: dict[str, str], started_ms: int
) -> dict[str, Any]:
    """The one shape `status`, serving and `/metadata` describe a version in.

    `trained_at` is the train step's own record; for versions without it, `started_ms` (when
    the logging run began, or the registration time when there is no run).
    """
    started = datetime.fromtimestamp(started_ms / 1000, tz=UTC).isoformat()
    return {
        "name": name,
        "version": version,
        "metrics": {
            k.removeprefix("test_"): float(v) for k, v in metrics.items() if k.startswith("test_")
        },
        "git_commit": tags.get(f"{TAG_PREFIX}git_commit", UNKNOWN),
        "data_md5": tags.get(f"{TAG_PREFIX}data_md5", UNKNOWN),
        "candidate": tags.get(f"{TAG_PREFIX}candidate", UNKNOWN),
        "trained_at": tags.get(f"{TAG_PREFIX}trained_at") or started,
        "gate_reason": tags.get(f"{TAG_PREFIX}gate.reason", ""),
    }


def quick_status(model: str | None) -> dict[str, Any] | None:
    """`flywheel status` for the project's own SQLite store, without pydantic or MLflow.

    Importing the settings and params models costs most of a `status`; this reads the few
    values it needs as `Settings` and `load_params` would (a test holds them equal). None
    when anything is not the simple case: the caller then takes the full path, which also
    reports a bad params.yaml properly.
    """
    import yaml

    from flywheel.project_lock import LOCK_NAME, last_run_at

    uri, params, artifacts = status_paths()
    if model is None:
        try:
            model = yaml.safe_load(params.read_text())["promote"]["model_name"]
        except (OSError, yaml.YAMLError, TypeError, KeyError):
            return None
        if not isinstance(model, str) or not model:
            return None
    found = read_status(uri, model)
    if found is not None:
        found["last_run"] = last_run_at(artifacts / LOCK_NAME)
    return found


def status_paths() -> tuple[str, Path, Path]:
    """Settings' `mlflow_uri`, `params_path` and `artifacts`, from the same environment."""
    env = {key.lower(): value for key, value in os.environ.items()}  # as pydantic-settings
    root = Path(env.get("flywheel_root") or Path.cwd())
    uri = env.get("flywheel_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    return (
        uri or f"sqlite:///{root / 'mlflow.db'}",
        _under(root, env.get("flywheel_params_file", "params.yaml")),
        _under(root, env.get("flywheel_artifacts_dir", "artifacts")),
    )


def _under(root: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else root / path
