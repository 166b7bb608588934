"""The training flow: the steps of `flywheel.pipeline.dag` as Prefect tasks, with its edges.

Works with no Prefect server configured (a temporary local one starts) and shows up, with its
task runs, its DAG, Flywheel's own log lines and a run summary artifact, in the Prefect UI when
`PREFECT_API_URL` points at `prefect server start` (also for deployment runs on a worker).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Collection
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flywheel.errors import FlywheelError
from flywheel.pipeline import state
from flywheel.pipeline.ahead import collect, take_ahead
from flywheel.pipeline.dag import STEPS, upstream
from flywheel.pipeline.execute import execute_stage
from flywheel.pipeline.summary import run_summary_markdown

# What the steps after validate import, in the order they need it (`flywheel run` validates
# in a process of its own, `flywheel.pipeline.ahead`, which imports Great Expectations there).
SKLEARN_IMPORTS = ("sklearn.compose", "sklearn.ensemble")
TORCH_IMPORTS = ("torch", "torch._dynamo")  # only for the mlp candidate; its optimizer: dynamo
MLFLOW_IMPORTS = (
    "mlflow.pyfunc",
    # MLflow's SQLite stores: their import configures SQLAlchemy mappers, seconds on 2 cores
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)
SUMMARY_ARTIFACT = "flywheel-run-summary"


def prewarm_imports(candidates: Collection[str]) -> threading.Thread:
    """Import the steps' libraries in the background while Prefect's server starts.

    Without a configured API the first flow call waits seconds for a temporary server; doing
    the imports meanwhile takes them off the critical path, and so does starting the chart
    renderer's JavaScript engine (it runs outside the GIL). torch (seconds, and hundreds of
    MB) only when a candidate needs it. Nothing is configured by it.
    """
    torch = TORCH_IMPORTS if "mlp" in candidates else ()
    modules = (*SKLEARN_IMPORTS, *torch, *MLFLOW_IMPORTS)
    thread = threading.Thread(
        target=_prewarm, args=(modules,), name="flywheel-prewarm", daemon=True
    )
    thread.start()
    return thread


def _prewarm(modules: tuple[str, ...]) -> None:
    from flywheel.evaluation.plots import warm_renderer
    from flywheel.gc_imports import resume_after_imports

    for module in modules:
        importlib.import_module(module)
    resume_after_imports()  # `flywheel run` paused collection for its imports
    warm_renderer()


def forward_flywheel_logs() -> None:
    """Send the `flywheel` loggers' INFO lines to the run's log in the Prefect API.

    `flywheel run` sets PREFECT_LOGGING_EXTRA_LOGGERS, but a worker's flow-run process only
    has Prefect's logging config, whose root level (WARNING) hides the validation result and
    the promotion decision; this makes both drivers behave alike, without duplicate lines.
    """
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger("flywheel")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):
        logger.addHandler(APILogHandler())


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may succeed a second time: bad data or a gate verdict never will."""
    return not isinstance(state.data, FlywheelError)


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=_transient, task_run_name="{name}")
def run_stage(name: str, spec: str | None, run_tags: dict[str, str]) -> dict[str, Any] | State:
    """Run one step, or skip it when DVC's lock says it is up to date (default dataset only).

    A skipped step ends as a Completed task run named "Skipped" whose message says why, so the
    Prefect UI shows it; a step that ran is recorded in dvc.lock as `dvc repro` would. A step
    `flywheel run` started ahead in its own process is collected here instead of run again.
    """
    ahead = take_ahead(name, spec)
    row = collect(ahead) if ahead else execute_stage(name, spec, run_tags)
    return Completed(name="Skipped", message=state.SKIPPED) if row is None else row


@flow(name="flywheel-training")
def training(spec: str | None = None, reason: str | None = None) -> list[dict[str, Any]]:
    """Run every step once, each after the steps it reads from (the DAG of dvc.yaml).

    A failing step stops the flow and nothing after it runs; either way the run's page gets
    a summary artifact saying what ran and whether a model was promoted.
    """
    from flywheel.registry.loadcheck import discard_checkers, prestart_checker

    forward_flywheel_logs()
    prestart_checker()  # promote's fresh-process load check, importing while the steps run
    tags = {"prefect_flow_run_id": str(flow_run.id)} if flow_run.id else {}
    tags |= {"retrain_reason": reason} if reason else {}  # tag flywheel.retrain_reason
    futures: dict[str, PrefectFuture[Any]] = {}
    for step in STEPS:
        after = [futures[name] for name in upstream(step.name)]
        futures[step.name] = run_stage.submit(
            step.name, spec, tags, wait_for=after, return_state=False
        )
    report: list[dict[str, Any]] = []
    try:
        for step in STEPS:
            row = futures[step.name].result()  # None: the step was skipped
            skipped = {"step": step.name, "seconds": 0.0, "summary": {"skipped": state.SKIPPED}}
            report.append(row or skipped)
    except Exception as exc:
        failed = STEPS[len(report)].name
        _publish(report, f"step {failed} failed: {exc}")
        raise
    finally:
        discard_checkers()
    _publish(report, None)
    return report


def _publish(report: list[dict[str, Any]], failure: str | None) -> None:
    create_markdown_artifact(
        run_summary_markdown(report, failure),
        key=SUMMARY_ARTIFACT,
        description="What ran and whether a model was promoted",
    )
