"""What one candidate fit gave, wherever it ran (a local process pool or a Dask worker)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """A job's result, or the error it raised (as text, and, where it ran in a process of ours,
    the exception itself so a user error keeps its exit code), and the seconds the fit took
    where it ran."""

    value: R | None
    seconds: float
    error: str | None = None
    raised: Exception | None = None
