"""One step as a run executes it: skipped when DVC says it is up to date, recorded when it ran.

`flywheel step NAME` (each dvc.yaml stage), the Prefect task and the process `flywheel run`
starts ahead for validate all run a step through here: one body, so all record and skip alike.
"""

from __future__ import annotations

import time
from typing import Any

from flywheel.steps import state
from flywheel.steps.context import StepContext
from flywheel.steps.dag import step


def execute_stage(ctx: StepContext, name: str, force: bool = False) -> dict[str, Any] | None:
    """The step's row for the run summary, or None when it is up to date (unless `force`).

    Only the default dataset is tracked by dvc.yaml, so only it can be skipped or recorded.
    Up to date means DVC's lock says so and, for a step whose output lives outside the
    workspace (promote's registered version), that output is still there.
    """
    root = ctx.settings.root
    if not force and ctx.is_default_dataset and _up_to_date(ctx, name):
        return None
    started = time.perf_counter()
    summary = run_step(name, ctx)
    if ctx.is_default_dataset:
        state.record(root, name)
    return {"step": name, "seconds": round(time.perf_counter() - started, 2), "summary": summary}


def _up_to_date(ctx: StepContext, name: str) -> bool:
    if not state.up_to_date(ctx.settings.root, name):
        return False
    check = step(name).still_current
    return check is None or check(ctx)


def run_step(name: str, ctx: StepContext) -> dict[str, Any]:
    """The declared step's function on `ctx`, then freed memory handed back."""
    try:
        return step(name).run(ctx)
    finally:
        release_memory()


def release_memory() -> None:
    """Hand what a step freed back to the operating system before the next step starts.

    `flywheel run` runs every step in one process; Arrow's allocator and glibc's keep freed
    pages for reuse, so without this each step's peak stacked on the last one's leftovers
    (at 1M rows the process held ~1 GB more than any single step needed).
    """
    import contextlib
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): no trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
