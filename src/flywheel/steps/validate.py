"""validate: the table on disk against its spec's expectations (Great Expectations).

Load the table (whole, or in batches when it is large) → `validation.validate_batches` → write
result.json and Data Docs, whole or not at all. The table is never touched: a bad one stays
where it arrived for inspection, and its md5 goes into result.json and the error, so the run's
record says which bytes failed.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.atomic import replacing_dir
from flywheel.errors import DataError, ValidationFailed
from flywheel.steps.context import StepContext

if TYPE_CHECKING:
    import pandas as pd

    from flywheel.config import ValidateParams

log = logging.getLogger(__name__)


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.registry.lineage import file_md5
    from flywheel.validation import validate_batches

    _ensure_default_data(ctx)
    path, out = ctx.data_path, ctx.out("validate")
    data = {"path": _shown(ctx, path), "md5": file_md5(path) if path.is_file() else None}
    unreadable: DataError | ValidationFailed | None = None
    with replacing_dir(out) as staging:
        try:
            frames = [_image_metadata(ctx)] if ctx.spec.is_image else _batches(
                path, ctx.params.validate_)
            report, record = validate_batches(
                ctx.spec, frames, ctx.params.validate_, staging / "docs",
            )
        except (DataError, ValidationFailed) as exc:
            unreadable = exc
            shutil.rmtree(staging / "docs", ignore_errors=True)
            record = {"success": False, "error": str(exc)}
        (staging / "result.json").write_text(
            json.dumps({**record, "data": data}, indent=2, default=str)
        )
    if isinstance(unreadable, ValidationFailed):
        raise unreadable  # an image folder's check: its line names the file or class
    if unreadable is not None:
        raise DataError(f"{unreadable} (md5 {data['md5']}; file left as it is)") from unreadable
    if not report.success:
        problems = "; ".join(" ".join(f.line().split()) for f in report.failures)
        raise ValidationFailed(
            f"{data['path']} (md5 {data['md5']}) failed validation against spec "
            f"{ctx.spec.name!r}: {problems} (report: {out / 'docs' / 'index.html'})"
        )
    statistics = report.statistics
    return {"rows": statistics["rows"], "expectations": statistics.get("evaluated_expectations")}


def _batches(path: Path, params: ValidateParams) -> Iterable[pd.DataFrame]:
    """A file up to `whole_table_max_mb` is read whole, as it always was (one read, the fastest);
    a larger one in batches of `batch_rows` rows, so memory holds a batch, not the table."""
    from flywheel.data.io import read_table, table_batches

    if path.is_file() and path.stat().st_size > params.whole_table_max_mb * 2**20:
        return table_batches(path, params.batch_rows)
    return [read_table(path)]


def _image_metadata(ctx: StepContext) -> Any:
    """An image folder's per-file table (path, class, statistics) once its own checks pass:
    what Great Expectations validates and Data Docs show, as a table's rows."""
    from flywheel.images.folder import IMAGE_BYTES_COLUMN
    from flywheel.validation.images import checked_image_table

    return checked_image_table(ctx.spec, ctx.data_path).drop(columns=IMAGE_BYTES_COLUMN)


def _ensure_default_data(ctx: StepContext) -> None:
    """The DVC-tracked default data is materialized on demand; other files are used as they are."""
    from flywheel.data.materialize import DEFAULT_TABLE, ensure_raw_data

    root = ctx.settings.root
    if (
        ctx.data_path.resolve() == (root / DEFAULT_TABLE).resolve()
        and (root / "data.dvc").is_file()
    ):
        how = ensure_raw_data(root)
        log.info("raw data %s: %s", DEFAULT_TABLE, how)


def _shown(ctx: StepContext, path: Path) -> str:
    """A path as the record shows it: relative to the project, so clones record the same."""
    root = ctx.settings.root.resolve()
    return (
        str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path)
    )
