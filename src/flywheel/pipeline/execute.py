"""One step as a run executes it: skipped when DVC says it is up to date, recorded when it ran.

The Prefect task runs this, and so does the process that `flywheel run` starts ahead for the
first step (`flywheel.pipeline.ahead`): one body, so both record and skip alike.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flywheel.pipeline import state
from flywheel.pipeline.context import make_context
from flywheel.pipeline.stages import run_step


def execute_stage(name: str, spec: str | None, run_tags: dict[str, str]) -> dict[str, Any] | None:
    """The step's row for the run summary, or None when DVC's lock says it is up to date.

    Only the default dataset is tracked by dvc.yaml, so only it can be skipped or recorded.
    """
    ctx = make_context(Path(spec) if spec else None, run_tags)
    root = ctx.settings.root
    if ctx.is_default_dataset and state.up_to_date(root, name):
        return None
    started = time.perf_counter()
    summary = run_step(name, ctx)
    if ctx.is_default_dataset:
        state.record(root, name)
    return {"step": name, "seconds": round(time.perf_counter() - started, 2), "summary": summary}
