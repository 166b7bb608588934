"""Reading the inference log (`logs/inference/*.parquet`) with pyarrow: one pass, few columns.

Files are named after the moment they were flushed (`inference-<UTC stamp>-<pid>-<seq>`), which
is after every row they hold, so a file flushed before a window starts is skipped unopened.
Half-written files end in `.parquet.tmp` and are never matched. A shadow challenger's rows
share the log (and the request ids) with the champion's, told apart by `role`: readers get the
champion's rows unless they ask for another role, so drift, live metrics and the rows a retrain
learns from are never the challenger's. Files from before `role` existed are the champion's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.errors import DataError

CHAMPION_ROLE = "champion"
CHALLENGER_ROLE = "challenger"
CANARY_ROLE = "canary"  # rows a canary version answered (serving/canary.py)
ROLE = "role"
LATENCY = "latency_s"
_STAMP = re.compile(r"^inference-(\d{8}T\d{12})-")


def log_files(folder: Path, since: datetime | None = None) -> list[Path]:
    """The log's complete files, oldest first, without those flushed before `since`."""
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.parquet"))
    if since is None:
        return files
    return [path for path in files if not _flushed_before(path, since)]


def _flushed_before(path: Path, since: datetime) -> bool:
    match = _STAMP.match(path.name)
    if match is None:
        return False  # not named by the service: read it
    flushed = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    return flushed < since


def read_log(
    folder: Path,
    columns: list[str],
    since: datetime | None = None,
    version: str | None = None,
    request_ids: list[str] | None = None,
    role: str | None = CHAMPION_ROLE,
) -> Any:
    """The rows logged since `since` (by one model version; of these request ids; answered in
    `role`, None: every role), only those of `columns` the log has; None if none. Files of
    different column sets are read together (missing columns are null); columns of clashing
    types are a DataError, not a traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = log_files(folder, since)
    if not files:
        return None
    condition = _condition(since, version, request_ids, role)
    try:  # the newest file's columns: those of the version serving now
        return _scan(files, columns, condition, pq.read_schema(files[-1]))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass  # older files whose columns clash with them (a hot-swap to another schema)
    try:
        merged = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
        return _scan(files, columns, condition, merged)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(
            f"inference log {folder}: its files disagree on column types ({exc}); expected "
            "the files of one model, as `flywheel serve` writes them"
        ) from None


def _condition(since: datetime | None, version: str | None, request_ids: list[str] | None,
               role: str | None) -> Any:
    import pyarrow.dataset as ds

    condition = None
    if role is not None:
        condition = ds.field(ROLE) == role
        if role == CHAMPION_ROLE:  # rows without a role were written before shadows existed
            condition = ds.field(ROLE).is_null() | condition
    if since is not None:
        recent = ds.field("time") >= since
        condition = recent if condition is None else condition & recent
    if version is not None:
        same = ds.field("model_version") == version
        condition = same if condition is None else condition & same
    if request_ids is not None:
        wanted = ds.field("request_id").isin(request_ids)
        condition = wanted if condition is None else condition & wanted
    return condition


def _scan(files: list[Path], columns: list[str], condition: Any, schema: Any) -> Any:
    """One pass over `files` read as `schema` (a column a file lacks reads as null)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    later = [pa.field(ROLE, pa.string()), pa.field(LATENCY, pa.float64())]
    missing = [f for f in later if f.name not in schema.names]  # older files lack them
    schema = pa.schema([*schema, *missing]) if missing else schema
    # Text columns come back dictionary-encoded, as Parquet stores them: no string per row.
    text = [f.name for f in schema if f.type in (pa.string(), pa.large_string())]
    fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=text))
    dataset = ds.dataset([str(f) for f in files], format=fmt, schema=schema)
    # A column the log does not hold (a personal feature dropped without a salt) is not asked
    # for: the caller sees it missing from the table instead of the read failing.
    present = [name for name in columns if name in dataset.schema.names]
    table = dataset.to_table(columns=present, filter=condition)
    return table if table.num_rows else None
