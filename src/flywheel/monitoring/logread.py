"""Reading the inference log (`logs/inference/*.parquet`) with pyarrow: one pass, few columns.

Files are named after the moment they were flushed (`inference-<UTC stamp>-<pid>-<seq>`), which
is after every row they hold, so a file flushed before a window starts is skipped unopened.
Half-written files end in `.parquet.tmp` and are never matched.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
) -> Any:
    """The rows logged since `since` (by one model version; of these request ids), only those
    of `columns` the log has; None if none."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = log_files(folder, since)
    if not files:
        return None
    # Text columns come back dictionary-encoded, as Parquet stores them: no string per row.
    text = [
        f.name
        for f in ds.dataset(str(files[0]), format="parquet").schema
        if f.type in (pa.string(), pa.large_string())
    ]
    fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=text))
    dataset = ds.dataset([str(f) for f in files], format=fmt)
    condition = None
    if since is not None:
        condition = ds.field("time") >= since
    if version is not None:
        same = ds.field("model_version") == version
        condition = same if condition is None else condition & same
    if request_ids is not None:
        wanted = ds.field("request_id").isin(request_ids)
        condition = wanted if condition is None else condition & wanted
    # A column the log does not hold (a personal feature dropped without a salt) is not asked
    # for: the caller sees it missing from the table instead of the read failing.
    present = [name for name in columns if name in dataset.schema.names]
    table = dataset.to_table(columns=present, filter=condition)
    return table if table.num_rows else None
