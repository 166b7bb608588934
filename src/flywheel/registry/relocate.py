"""Keep a local MLflow store's artifact paths inside the project when the project moves.

MLflow stores every artifact location (experiment, run, logged model, model version) as an
absolute `file://` path fixed when it was created. A copied or moved project would keep
writing into, and loading the champion from, the folder it came from. The project's store
and its `mlruns/` travel together, so the fix is to rewrite the old folder prefix to the
current one before MLflow reads anything. MLflow has no API for this; these are the columns
its SQLAlchemy store keeps the locations in.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

log = logging.getLogger(__name__)

LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)


def relocate_artifacts(db: Path, artifacts_uri: str) -> list[str]:
    """Point locations under another `.../mlruns` at `artifacts_uri`; return the old prefixes."""
    if not db.is_file():
        return []
    with closing(sqlite3.connect(db)) as conn:
        try:
            moved = _old_prefixes(conn, artifacts_uri)
            with conn:
                for old in moved:
                    for table, column in LOCATION_COLUMNS:
                        conn.execute(
                            f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                            f"WHERE substr({column}, 1, ?) = ?",
                            (artifacts_uri, len(old) + 1, len(old), old),
                        )
        except sqlite3.OperationalError as exc:  # not (yet) an MLflow schema: leave it alone
            log.debug("not relocating artifacts in %s: %s", db, exc)
            return []
    for old in moved:
        log.warning("project moved: MLflow artifacts under %s now read from %s", old, artifacts_uri)
    return moved


def _old_prefixes(conn: sqlite3.Connection, artifacts_uri: str) -> list[str]:
    """Each `file://.../mlruns` an experiment was created under that is not this project's."""
    found = []
    for (location,) in conn.execute("SELECT artifact_location FROM experiments"):
        location = str(location or "")
        if location == artifacts_uri or location.startswith(artifacts_uri + "/"):
            continue
        head, sep, _ = (location + "/").partition("/mlruns/")
        if location.startswith("file://") and sep:
            found.append(head + "/mlruns")
    return sorted(set(found))
