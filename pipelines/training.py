"""The training flow: the steps of `flywheel.pipeline.dag`, in order, as Prefect tasks.

Works with no Prefect server configured (a temporary local one starts) and shows up, with its
task runs, in the Prefect UI when `PREFECT_API_URL` points at `prefect server start`.
"""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flywheel.errors import FlywheelError
from flywheel.pipeline import state
from flywheel.pipeline.context import make_context
from flywheel.pipeline.dag import STEPS
from flywheel.pipeline.stages import run_step

# What the steps import, slowest first; ~20 s of imports on a 2-core machine.
STEP_IMPORTS = ("great_expectations", "torch", "torch._dynamo", "mlflow.pyfunc", "sklearn.ensemble")


def prewarm_imports() -> threading.Thread:
    """Import the steps' libraries in the background while Prefect's server starts.

    Without a configured API the first flow call waits ~20 s for a temporary server; doing
    the imports meanwhile takes them off the critical path. Nothing is configured by importing.
    """
    thread = threading.Thread(
        target=lambda: [importlib.import_module(m) for m in STEP_IMPORTS],
        name="flywheel-prewarm",
        daemon=True,
    )
    thread.start()
    return thread


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may succeed a second time: bad data or a gate verdict never will."""
    return not isinstance(state.data, FlywheelError)


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=_transient, task_run_name="{name}")
def run_stage(name: str, spec: str | None, run_tags: dict[str, str]) -> dict[str, Any] | State:
    """Run one step, or skip it when DVC's lock says it is up to date (default dataset only).

    A skipped step ends as a Completed task run named "Skipped" whose message says why, so the
    Prefect UI shows it; a step that ran is recorded in dvc.lock as `dvc repro` would.
    """
    ctx = make_context(Path(spec) if spec else None, run_tags)
    root = ctx.settings.root
    if ctx.is_default_dataset and state.up_to_date(root, name):
        return Completed(name="Skipped", message=state.SKIPPED)
    summary = run_step(name, ctx)
    if ctx.is_default_dataset:
        state.record(root, name)
    return summary


@flow(name="flywheel-training")
def training(spec: str | None = None, reason: str | None = None) -> list[dict[str, Any]]:
    """Run every step once; a failing step stops the flow and nothing after it runs."""
    tags = {"prefect_flow_run_id": str(flow_run.id)} if flow_run.id else {}
    tags |= {"retrain_reason": reason} if reason else {}  # tag flywheel.retrain_reason
    report = []
    for step in STEPS:
        started = time.perf_counter()
        outcome = run_stage(step.name, spec, tags)
        summary = {"skipped": state.SKIPPED} if isinstance(outcome, State) else outcome
        report.append(
            {
                "step": step.name,
                "seconds": round(time.perf_counter() - started, 2),
                "summary": summary,
            }
        )
    return report
