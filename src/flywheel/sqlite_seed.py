"""A new SQLite database made from a stored schema instead of by running its migrations.

Prefect and MLflow both build a new SQLite database by running every Alembic migration they
ship, one by one: seconds of a fresh clone's first run on two cores. Executing the SQL text of
the database those migrations produce takes a tenth of a second and leaves the same tables,
indexes, triggers and seed rows. `prefect_db` and `mlflow_db` keep one such file each.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from pathlib import Path


def seed_database(target: Path, schema: Path) -> bool:
    """Create `target` from the SQL in `schema` if it does not exist yet; True if this did.

    Built under a temporary name and hard-linked into place, which fails if another process
    created `target` meanwhile: nobody is ever left writing to a database that was replaced,
    and a run killed halfway leaves no half-made database to trust.
    """
    if target.exists() or not schema.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    os.close(fd)
    try:
        with sqlite3.connect(staging) as db:
            db.executescript(schema.read_text())
        db.close()
        os.link(staging, target)
    except FileExistsError:
        return False
    finally:
        Path(staging).unlink(missing_ok=True)
    return True


def dump_schema(db: Path, schema: Path, without_rows_of: tuple[str, ...] = ()) -> None:
    """Write `db` as SQL text to `schema`, leaving out the rows of the tables named."""
    skipped = tuple(f'INSERT INTO "{table}"' for table in without_rows_of)
    with sqlite3.connect(db) as conn:
        lines = [line for line in conn.iterdump() if not line.startswith(skipped)]
    conn.close()
    schema.write_text("\n".join(lines) + "\n")


REVISION = re.compile(r"INSERT INTO \"alembic_version\" VALUES\('(\w+)'\)")


def schema_revision(schema: Path) -> str | None:
    """The Alembic revision a stored schema creates its database at."""
    found = REVISION.search(schema.read_text())
    return found.group(1) if found else None


def alembic_head(versions: Path) -> str | None:
    """The newest revision among the Alembic migration files in `versions`; None if unclear."""
    revisions, parents = set(), set()
    for path in versions.glob("*.py"):
        text = path.read_text()
        revisions |= set(re.findall(r'^revision = "(\w+)"', text, re.M))
        parents |= set(re.findall(r'^down_revision = "(\w+)"', text, re.M))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
