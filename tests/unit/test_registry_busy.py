"""registry/busy.py: SQLite's "locked" is recognised wherever it sits in an exception's chain."""

from __future__ import annotations

import sqlite3

import pytest

from flywheel.registry.busy import RegistryBusy, busy_as_one_line, is_locked


def raised_from(cause: BaseException) -> RuntimeError:
    try:
        raise RuntimeError("(sqlalchemy.exc.OperationalError) wrapped") from cause
    except RuntimeError as exc:
        return exc


def test_a_locked_database_deep_in_the_chain_is_recognised() -> None:
    assert is_locked(raised_from(sqlite3.OperationalError("database is locked")))


def test_other_database_errors_are_not_busy() -> None:
    assert not is_locked(raised_from(sqlite3.OperationalError("no such table: models")))


def test_a_chain_that_loops_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert not is_locked(first)


def test_the_block_leaves_as_registry_busy_with_exit_6() -> None:
    with pytest.raises(RegistryBusy) as caught, busy_as_one_line("sqlite:///x.db"):
        raise raised_from(sqlite3.OperationalError("database is locked"))
    assert caught.value.exit_code == 6 and "sqlite:///x.db is busy" in str(caught.value)


def test_anything_else_leaves_unchanged() -> None:
    with pytest.raises(KeyError), busy_as_one_line("sqlite:///x.db"):
        raise KeyError("champion")
