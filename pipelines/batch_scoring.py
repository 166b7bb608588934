"""The batch-scoring flow: `flywheel predict` as a Prefect flow, for schedules and workers.

One task, because the work is one streaming pass over the file; its summary (rows scored and
rejected, the version that scored them, where the files are) is the flow's result and shows in
the Prefect UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from pipelines.training import _transient  # bad data fails the same way twice


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=_transient)
def score(
    source: str, output: str | None, version: str | None, model: str | None
) -> dict[str, Any]:
    from flywheel.batch.score import make_job, score_file
    from flywheel.settings import settings

    current = settings()
    job = make_job(current, Path(source), Path(output) if output else None, version, model)
    return score_file(current, job)


@flow(name="flywheel-batch-scoring")
def batch_scoring(
    source: str, output: str | None = None, version: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """Score `source` (CSV or Parquet) with the champion, or with `version`."""
    return score(source, output, version, model)
