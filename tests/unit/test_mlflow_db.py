"""A new project's MLflow store is seeded from the shipped schema: MLflow opens it without
migrating, it has the same tables as a migrated one, and the Default experiment keeps artifacts
in this project; a stale schema or an existing store is left to MLflow."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flywheel.registry.mlflow_db import SCHEMA, installed_head, seed_store
from flywheel.sqlite_seed import REVISION, schema_revision, seed_database


def _schema(db: Path) -> dict[str, list[str]]:
    """Each table, index and trigger as its sorted definition lines: migrations that rebuild a
    table list its constraints in a different order from one process to the next."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        found = {
            f"{kind} {name}": sorted(line.strip().rstrip(",") for line in sql.splitlines())
            for kind, name, sql in rows
        }
    conn.close()
    return found


def test_shipped_schema_is_at_the_installed_mlflows_head() -> None:
    assert schema_revision(SCHEMA) == installed_head(), (
        "src/flywheel/registry/mlflow_schema.sql is stale: "
        "run `.venv/bin/python -m flywheel.registry.mlflow_db`"
    )


@pytest.mark.slow  # MLflow's own migrations of a fresh store: seconds
def test_seeded_store_is_the_migrated_one_and_mlflow_uses_it(tmp_path: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    seeded, migrated = tmp_path / "seeded" / "mlflow.db", tmp_path / "migrated.db"
    assert seed_store(seeded)
    SqlAlchemyStore(f"sqlite:///{migrated}", str(tmp_path / "other"))
    assert _schema(seeded) == _schema(migrated)
    store = SqlAlchemyStore(f"sqlite:///{seeded}", str(tmp_path / "artifacts"))
    default = store.get_experiment("0")
    assert default.artifact_location.endswith(str(tmp_path / "artifacts" / "0"))
    run = store.create_run("0", "me", 0, [], "run")  # a working store, not just a schema
    assert store.get_run(run.info.run_id).info.experiment_id == "0"
    assert not seed_store(seeded)  # exists: never replaced
    assert store.get_run(run.info.run_id) is not None


def test_a_stale_schema_is_left_to_mlflow(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sql"
    old = "INSERT INTO \"alembic_version\" VALUES('0000')"
    stale.write_text(REVISION.sub(old, SCHEMA.read_text()))
    assert not seed_store(tmp_path / "mlflow.db", stale)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_database_made_meanwhile_by_another_process_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "mlflow.db"
    real_link = __import__("os").link

    def other_process_first(source: str, dest: Path) -> None:
        target.write_bytes(b"theirs")
        real_link(source, dest)

    monkeypatch.setattr("flywheel.sqlite_seed.os.link", other_process_first)
    assert not seed_database(target, SCHEMA)
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["mlflow.db"]  # no staging file left
