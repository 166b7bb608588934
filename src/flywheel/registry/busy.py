"""A registry another process is writing: one line and an exit code, not a driver's traceback.

The project's SQLite registry admits one writer; while a run registers, promotes or tags a
version it holds the database's write lock, and a reader (`flywheel status`, `monitor`,
`rollback`) waits for SQLite's busy timeout and then gets "database is locked" from deep
inside SQLAlchemy or MLflow. That is no bug to report but a moment to wait, so it is turned into
`RegistryBusy` (exit 6, like a busy project) after that bounded wait. Errors are recognised by
their message anywhere in the exception's chain, so MLflow is not imported to tell.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flywheel.errors import ProjectBusy

LOCKED = ("database is locked", "database table is locked")


class RegistryBusy(ProjectBusy):
    """Another process holds the registry's write lock."""


def registry_busy(uri: str) -> RegistryBusy:
    return RegistryBusy(
        f"the registry {uri} is busy (another flywheel run or process holds its write lock); "
        "retry in a moment"
    )


def is_locked(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, is SQLite's "locked"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(text in str(current) for text in LOCKED):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def busy_as_one_line(uri: str) -> Iterator[None]:
    """Run the block; a locked registry inside it leaves as `RegistryBusy` naming `uri`."""
    try:
        yield
    except RegistryBusy:
        raise
    except Exception as exc:
        if is_locked(exc):
            raise registry_busy(uri) from exc
        raise
