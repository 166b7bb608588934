"""Read the project's SQLite registry without importing MLflow, for a `status` under 2 s.

Importing MLflow costs 3-5 s here; `flywheel status` needs four small queries. This reads the
tables MLflow's SQLAlchemy store writes (registered_models, registered_model_aliases,
model_versions, model_version_tags, latest_metrics), read-only, so it never creates or
migrates a database. Any other store, or a schema this does not know, returns None and the
caller uses MLflow's client.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from flywheel.errors import RegistryError

SQLITE_PREFIX = "sqlite:///"


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
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return _status(conn, uri, model_name)
    except sqlite3.DatabaseError:
        return None  # a schema this reader does not know: MLflow's client knows it


def _status(conn: sqlite3.Connection, uri: str, name: str) -> dict[str, Any]:
    from flywheel.registry.store import CHAMPION, PREVIOUS

    known = [row[0] for row in conn.execute("SELECT name FROM registered_models ORDER BY name")]
    if name not in known:
        raise unknown_model(name, uri, known)
    return {
        "model_name": name,
        "champion": _aliased(conn, name, CHAMPION),
        "previous": _aliased(conn, name, PREVIOUS),
    }


def _aliased(conn: sqlite3.Connection, name: str, alias: str) -> dict[str, Any] | None:
    from flywheel.registry.status import version_record

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
