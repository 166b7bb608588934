"""The training flow: the steps of `flywheel.steps.dag` as Prefect tasks, with its edges.

Works with no Prefect server configured (a temporary local one starts) and shows up, with its
task runs, its DAG, Flywheel's own log lines and a run summary artifact, in the Prefect UI when
`PREFECT_API_URL` points at `prefect server start` (also for deployment runs on a worker).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flywheel.errors import FlywheelError
from flywheel.steps import state
from flywheel.steps.champion import keeps_serving
from flywheel.steps.context import StepContext, make_context
from flywheel.steps.dag import STEPS, upstream
from flywheel.steps.execute import execute_stage
from flywheel.steps.refresh import Refresh, conclude, refresh_from_traffic
from flywheel.steps.summary import run_summary_markdown
from pipelines import fast_start
from pipelines.ahead import collect

SUMMARY_ARTIFACT = "flywheel-run-summary"


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
def run_stage(
    name: str, spec: str | None, run_tags: dict[str, str], force: bool = False
) -> dict[str, Any] | State:
    """Run one step, or skip it when DVC's lock says it is up to date (default dataset only).

    A skipped step ends as a Completed task run named "Skipped" whose message says why, so the
    Prefect UI shows it; a step that ran is recorded in dvc.lock as `dvc repro` would. A step
    `flywheel run` started ahead in its own process is collected here instead of run again.
    """
    row = _execute(name, spec, run_tags, force)
    return Completed(name="Skipped", message=state.SKIPPED) if row is None else row


def _execute(
    name: str, spec: str | None, run_tags: dict[str, str], force: bool
) -> dict[str, Any] | None:
    """The step's row: collected from `flywheel run`'s fast start, or run here."""
    head = fast_start.active()
    ahead = head.take_ahead(name, spec) if head else None
    if ahead is not None:
        return collect(ahead)
    checker = head.take_checker if head else None
    context = make_context(Path(spec) if spec else None, run_tags, started_checker=checker)
    return execute_stage(context, name, force)


@task(task_run_name="refresh-data")
def refresh_data(spec: str | None, reason: str) -> Refresh:
    """A triggered retrain first appends the labelled traffic it has not learned from."""
    return refresh_from_traffic(make_context(Path(spec) if spec else None), reason)


@flow(name="flywheel-training")
def training(
    spec: str | None = None, reason: str | None = None, force: bool = False
) -> list[dict[str, Any]]:
    """Run every step once, each after the steps it reads from (the DAG of dvc.yaml).

    Started for a `reason` (an alert, a decay), it first refreshes the data from labelled
    traffic. A failing step stops the flow and nothing after it runs; either way the run's page
    gets a summary artifact saying what ran and whether a model was promoted, or why not and
    which champion keeps serving. `force` reruns every step.
    """
    forward_flywheel_logs()
    tags = {"prefect_flow_run_id": str(flow_run.id)} if flow_run.id else {}
    tags |= {"retrain_reason": reason} if reason else {}  # tag flywheel.retrain_reason
    refresh = refresh_data(spec, reason) if reason else None
    told = refresh.line if refresh else None
    if refresh is not None and refresh.provenance:  # tag flywheel.data_refresh
        tags["data_refresh"] = refresh.line
    futures: dict[str, PrefectFuture[Any]] = {}
    for step in STEPS:
        after = [futures[name] for name in upstream(step.name)]
        futures[step.name] = run_stage.submit(
            step.name, spec, tags, force, wait_for=after, return_state=False
        )
    report: list[dict[str, Any]] = []
    try:
        for step in STEPS:
            row = futures[step.name].result()  # None: the step was skipped
            skipped = {"step": step.name, "seconds": 0.0, "summary": {"skipped": state.SKIPPED}}
            report.append(row or skipped)
    except Exception as exc:
        failed = STEPS[len(report)].name
        _publish(report, f"step {failed} failed: {exc}", told)
        raise
    context = make_context(Path(spec) if spec else None)
    _say_what_serves(report, context)
    ending = conclude(context, report, refresh, reason)
    _publish(report, None, ending or told)  # an ending quotes the refresh's line
    return report


def _say_what_serves(report: list[dict[str, Any]], context: StepContext) -> None:
    """A run whose promote was up to date says which champion keeps serving (the CLI prints
    it); when some step ran all the same, the flow run's log says it too (`conclude` speaks
    for a run where none did)."""
    promote = next(r["summary"] for r in report if r["step"] == "promote")
    if "skipped" not in promote:
        return
    ran = [r["step"] for r in report if "skipped" not in r["summary"]]
    promote["serving"] = keeps_serving(context)
    if ran:
        logging.getLogger("flywheel.run").info(
            "nothing registered (only %s ran): %s", ", ".join(ran), promote["serving"]
        )


def _publish(report: list[dict[str, Any]], failure: str | None, note: str | None) -> None:
    create_markdown_artifact(
        run_summary_markdown(report, failure, (note,) if note else ()),
        key=SUMMARY_ARTIFACT,
        description="What ran and whether a model was promoted",
    )
