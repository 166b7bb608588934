"""A new project's MLflow store, created from the migrated schema instead of by migrating.

The first `connect` of a fresh clone had MLflow run its ~70 Alembic migrations on the new
`mlflow.db` (about a second of the first run on two cores). `mlflow_schema.sql` is the store
those migrations produce for the locked MLflow version (tables, the Alembic revision and the
default workspace; not the Default experiment, which MLflow adds with this project's artifact
folder when it opens the store). Unlike Prefect, MLflow refuses a store whose revision is not
its own, so the file is used only when its revision is the installed MLflow's newest; otherwise
MLflow creates the store itself, as before.

Regenerate after upgrading MLflow:

    .venv/bin/python -m flywheel.registry.mlflow_db
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from flywheel.sqlite_seed import alembic_head, dump_schema, schema_revision, seed_database

SCHEMA = Path(__file__).with_name("mlflow_schema.sql")


def seed_store(path: Path, schema: Path = SCHEMA) -> bool:
    """Create the SQLite store at `path` from `schema` if it does not exist; True if it did."""
    if path.exists() or not schema.is_file():  # checked first: no migration files read
        return False
    shipped = schema_revision(schema)
    if shipped is None or shipped != installed_head():
        return False
    return seed_database(path, schema)


def installed_head() -> str | None:
    """The newest migration of the installed MLflow, read from its migration files."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or spec.origin is None:
        return None
    return alembic_head(Path(spec.origin).parent / "store" / "db_migrations" / "versions")


def write_schema(schema: Path = SCHEMA) -> None:
    """Create a store with the installed MLflow and dump it to `schema`."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "mlflow.db"
        SqlAlchemyStore(f"sqlite:///{db}", str(Path(scratch) / "artifacts"))
        dump_schema(db, schema, without_rows_of=("experiments",))


if __name__ == "__main__":
    write_schema()
