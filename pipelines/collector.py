"""Imports without the cyclic garbage collector scanning what they create, over and over.

Importing torch, MLflow, Great Expectations or Prefect creates millions of objects that live as
long as the process. Each young-generation collection during the imports scans them again,
and so does every full one: a third of the import CPU of a run's processes on two cores. So a
process collects nothing while it imports its libraries, then freezes what exists (the
collector never scans it again) and collects as usual from there on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def imports_without_gc() -> Iterator[None]:
    """Collection off for the block; then what exists is frozen and collection resumes."""
    gc.disable()
    try:
        yield
    finally:
        resume_after_imports()


def pause_for_imports() -> None:
    """Collection off until `resume_after_imports` (for imports spread over threads)."""
    gc.disable()


def resume_after_imports() -> None:
    gc.freeze()
    gc.enable()
