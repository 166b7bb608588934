"""`flywheel predict`: score a file with a registered version, streaming, bad rows set aside.

Every row is checked against the spec the version was trained with before it reaches the
model; rows that do not conform go to a rejects file (with their row number and the problem)
instead of being scored on imputed values. The predictions file carries the input columns,
the answer's flat columns (data/answers.py: `prediction`; binary `probability`, multiclass
`probability_<class>`), and the version's lineage on every row. Both files are
written under temporary names and renamed when complete: a failed run leaves neither half.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.batch.chunks import read_chunks
from flywheel.data.answers import flat_answers
from flywheel.data.rows import check_rows
from flywheel.data.task import Task, task_of
from flywheel.errors import ConfigError, DataError, RegistryError
from flywheel.settings import Settings

logger = logging.getLogger(__name__)

LINEAGE = ("model_version", "git_commit", "data_md5")


@dataclass(frozen=True)
class BatchJob:
    source: Path
    output: Path
    model_name: str
    version: str | None  # None: the champion
    chunk_rows: int

    @property
    def rejects(self) -> Path:
        return self.output.with_name(f"{self.output.stem}.rejects.csv")


def make_job(
    settings: Settings,
    source: Path,
    output: Path | None = None,
    version: str | None = None,
    model: str | None = None,
) -> BatchJob:
    """A job with params.yaml's defaults: the model name, the chunk size, where to write."""
    from flywheel.config import load_params
    from flywheel.identity import registered_model

    params = load_params(settings.params_path)
    return BatchJob(
        source=source,
        # Under artifacts/, never next to the input (which may be DVC-tracked data).
        output=output or settings.step_dir("predict") / f"{source.stem}.predictions.parquet",
        model_name=registered_model(settings, params, model),
        version=version,
        chunk_rows=params.predict.chunk_rows,
    )


def score_file(settings: Settings, job: BatchJob) -> dict[str, Any]:
    """Score `job.source` into `job.output`; returns counts, paths and the version used."""
    if job.output.resolve() == job.source.resolve():
        raise ConfigError(f"--output {job.output} is the input file; choose another path")
    started = time.perf_counter()
    model = load_scoring_model(settings, job.model_name, job.version)
    # The model itself, past MLflow's schema enforcement: that checks every value in Python
    # (~15 s a million rows) and `check_rows` has already held each row to the spec, more
    # strictly (ranges, nulls, numbers) than the signature does.
    scorer = model.pyfunc.unwrap_python_model().model
    spec = scorer.spec
    lineage = {
        "model_version": model.version,
        "git_commit": model.git_commit,
        "data_md5": model.data_md5,
    }
    tmp_out = job.output.with_name(f".{job.output.name}.tmp")
    tmp_rejects = job.rejects.with_name(f".{job.rejects.name}.tmp")
    job.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        rows, rejected = _score_source(job, spec, scorer, lineage, tmp_out, tmp_rejects)
    except BaseException:
        tmp_out.unlink(missing_ok=True)
        tmp_rejects.unlink(missing_ok=True)
        raise
    _publish(tmp_rejects, job.rejects)
    if rows == rejected:
        tmp_out.unlink(missing_ok=True)
        raise DataError(
            f"{job.source}: none of its {rows} rows conforms to the spec of "
            f"{job.model_name} version {model.version}; see {job.rejects}"
        )
    tmp_out.replace(job.output)
    seconds = time.perf_counter() - started
    logger.info(
        "scored %d rows of %s with %s version %s in %.1f s",
        rows - rejected,
        job.source,
        job.model_name,
        model.version,
        seconds,
    )
    return {
        "input": str(job.source),
        "output": str(job.output),
        "rows": rows,
        "scored": rows - rejected,
        "rejected": rejected,
        "rejects": str(job.rejects) if rejected else None,
        "model_name": job.model_name,
        "model_version": model.version,
        "seconds": round(seconds, 2),
    }


def load_scoring_model(settings: Settings, name: str, version: str | None) -> Any:
    """The version asked for, or the champion; with its lineage (serving's loader).

    Its signature is checked before anything is downloaded or unpickled: the champion must be
    signed fit to serve; a version asked for by number must be one the pipeline registered.
    """
    from mlflow.exceptions import MlflowException

    from flywheel.registry.signing import ANY_VERDICT, SERVABLE
    from flywheel.registry.store import CHAMPION, connect, version_by_alias
    from flywheel.serving.registry_watch import load_version

    client = connect(settings)
    try:
        found = (
            version_by_alias(client, name, CHAMPION)
            if version is None
            else client.get_model_version(name, version)
        )
    except MlflowException as exc:
        raise RegistryError(
            f"no version {version} of {name!r} in the registry at {settings.mlflow_uri}"
        ) from exc
    if found is None:
        raise RegistryError(
            f"no {name}@{CHAMPION} in the registry at {settings.mlflow_uri}; "
            "run the pipeline (`flywheel run`) or pass --version"
        )
    return load_version(client, found, accept=SERVABLE if version is None else ANY_VERDICT)


def _score_source(
    job: BatchJob, spec: Any, scorer: Any, lineage: dict[str, str], out: Path, rejects: Path
) -> tuple[int, int]:
    """A table streamed in chunks, or an image model's folder (batch/score_images.py)."""
    if spec.is_image != job.source.is_dir():
        kind, expected = ("an image", "a folder of images") if spec.is_image else (
            "a table's", "a CSV or Parquet file")
        raise ConfigError(f"{job.source}: {job.model_name} is {kind} model; give it {expected}")
    if spec.is_image:
        from flywheel.batch.score_images import score_folder

        return score_folder(job, scorer, lineage, out, rejects)
    return _stream(job, spec, scorer, lineage, out, rejects)


def _stream(
    job: BatchJob, spec: Any, scorer: Any, lineage: dict[str, str], out: Path, rejects: Path
) -> tuple[int, int]:
    """Check, score and append one chunk at a time; returns (rows read, rows rejected)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: Any = None
    rows = rejected = 0
    try:
        for chunk in read_chunks(job.source, spec, job.chunk_rows):
            frame, problems = check_rows(spec, chunk)
            bad = pd.notna(problems)
            if bad.any():
                _append_rejects(
                    chunk[bad],
                    rows + np.flatnonzero(bad),
                    problems[bad],
                    rejects,
                    header=rejected == 0,
                )
                rejected += int(bad.sum())
                frame = frame[~bad]
            rows += len(chunk)
            if frame.empty:
                continue
            answer = scorer.predict(frame)
            table = pa.Table.from_pandas(
                _with_answers(frame, answer, lineage, task_of(spec)), preserve_index=False
            )
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return rows, rejected


def _with_answers(
    frame: pd.DataFrame, answer: pd.DataFrame, lineage: dict[str, str], task: Task
) -> pd.DataFrame:
    """The rows with the answer's flat columns (data/answers.py, as the inference log's)."""
    scored = frame.reset_index(drop=True)
    for name, values in flat_answers(task, answer).items():
        scored[name] = values  # as they are: no Python object per label
    for key in LINEAGE:
        scored[key] = lineage[key]
    return scored


def _append_rejects(
    rows: pd.DataFrame, numbers: np.ndarray, problems: np.ndarray, path: Path, header: bool
) -> None:
    rows = rows.reset_index(drop=True)
    rows.insert(0, "problem", problems)
    rows.insert(0, "row", numbers)
    rows.to_csv(path, mode="w" if header else "a", header=header, index=False)


def _publish(tmp: Path, target: Path) -> None:
    """The rejects of this run, or none: a stale file from an earlier run is ours to remove."""
    if tmp.exists():
        tmp.replace(target)
    else:
        target.unlink(missing_ok=True)
