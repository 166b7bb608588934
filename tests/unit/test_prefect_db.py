"""A new project's Prefect database is seeded from the shipped schema, at Prefect's own head."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

from flywheel.sqlite_seed import alembic_head, schema_revision
from pipelines.prefect_db import SCHEMA, seed, sqlite_path


def _alembic_head() -> str:
    """The newest SQLite migration of the installed Prefect, read from its migration files."""
    spec = importlib.util.find_spec("prefect")
    assert spec is not None and spec.origin
    head = alembic_head(Path(spec.origin).parent / "server/database/_migrations/versions/sqlite")
    assert head is not None
    return head


def test_shipped_schema_is_at_the_installed_prefects_head() -> None:
    """Stale, the schema would still work (Prefect migrates the rest) but lose its speed."""
    assert schema_revision(SCHEMA) == _alembic_head(), (
        "pipelines/prefect_schema.sql is stale: "
        "run `.venv/bin/python -m pipelines.prefect_db`"
    )


def test_seed_creates_a_new_database_once_and_never_touches_an_existing_one(
    tmp_path: Path,
) -> None:
    db = tmp_path / "home" / "prefect.db"
    url = f"sqlite+aiosqlite:///{db}"
    assert seed(url)
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        conn.execute("INSERT INTO variable (name, value) VALUES ('mine', '1')")
    assert {"flow_run", "task_run", "artifact", "events"} <= tables
    assert revision == _alembic_head()
    assert not seed(url)  # exists: left as it is, rows included
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM variable").fetchone() == (1,)
    assert [p.name for p in db.parent.iterdir()] == ["prefect.db"]  # no staging file left


def test_other_databases_are_left_to_prefect(tmp_path: Path) -> None:
    assert sqlite_path("postgresql+asyncpg://u:p@localhost/prefect") is None
    assert sqlite_path("sqlite+aiosqlite:///:memory:") is None
    assert not seed("postgresql+asyncpg://u:p@localhost/prefect")
    assert sqlite_path(f"sqlite+aiosqlite:///{tmp_path}/p.db?timeout=5") == tmp_path / "p.db"
