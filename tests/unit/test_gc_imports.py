"""A process's import phase runs without cyclic collection, and collection always resumes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pipelines.collector import imports_without_gc


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()  # give the test process its collector back as it was
    gc.enable()


def test_no_collection_inside_then_frozen_and_collecting() -> None:
    with imports_without_gc():
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= len(kept)


def test_collection_resumes_when_an_import_fails() -> None:
    with pytest.raises(ModuleNotFoundError), imports_without_gc():
        import flywheel_no_such_module  # noqa: F401
    assert gc.isenabled()
