"""A new project's Prefect database, created from the migrated schema instead of by migrating.

On a fresh clone the temporary Prefect server's first job is to run every Alembic migration of
its SQLite database one by one (over a hundred, 12-19 s on a busy 2-core machine), on the
critical path of the first `flywheel run`. `prefect_schema.sql` is the database those
migrations produce for the locked Prefect version, as SQL text (schema and the Alembic
revision, no rows of ours); executing it takes ~0.1 s and leaves the same tables, indexes and
triggers. Prefect then checks the revision on start and applies any migration newer than the
file, so a stale file costs time, never correctness. Only a SQLite database that does not
exist yet is created this way; an existing one, or PostgreSQL, is left to Prefect.

Regenerate after upgrading Prefect:

    .venv/bin/python -m pipelines.prefect_db
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flywheel.sqlite_seed import dump_schema, seed_database

SCHEMA = Path(__file__).with_name("prefect_schema.sql")
SQLITE_PREFIXES = ("sqlite+aiosqlite:///", "sqlite:///")


def sqlite_path(connection_url: str) -> Path | None:
    """The database file a SQLite URL names; None for another database or an in-memory one."""
    for prefix in SQLITE_PREFIXES:
        if connection_url.startswith(prefix):
            path = connection_url.removeprefix(prefix).split("?", 1)[0]
            return Path(path) if path and path != ":memory:" else None
    return None


def seed(connection_url: str, schema: Path = SCHEMA) -> bool:
    """Create the SQLite database from `schema` if it does not exist yet; True if it did."""
    target = sqlite_path(connection_url)
    return target is not None and seed_database(target, schema)


def create_app() -> object:
    """uvicorn's factory for the temporary server: seed a new database, then Prefect's app."""
    from pipelines.collector import imports_without_gc

    with imports_without_gc():
        from prefect.server.api.server import create_app as prefect_app
        from prefect.settings import get_current_settings

        url = get_current_settings().server.database.connection_url
        if url is not None:
            seed(url.get_secret_value())
        return prefect_app()


def write_schema(schema: Path = SCHEMA) -> None:
    """Migrate an empty database with the installed Prefect and dump it to `schema`."""
    import asyncio

    with tempfile.TemporaryDirectory() as home:
        os.environ["PREFECT_HOME"] = home
        os.environ.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        from prefect.server.database import provide_database_interface

        asyncio.run(provide_database_interface().create_db())
        dump_schema(Path(home) / "prefect.db", schema)


if __name__ == "__main__":
    write_schema()
