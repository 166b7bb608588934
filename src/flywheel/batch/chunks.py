"""Read a CSV or Parquet file a bounded number of rows at a time, so its size is not a limit.

Parquet is read by row groups' batches; CSV by pyarrow's streaming reader, with the spec's
numeric columns read as text so that one bad value is reported as a bad row instead of
failing the whole read (pyarrow fixes a column's type from the first block).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from flywheel.data.io import TABLE_SUFFIXES
from flywheel.data.spec import DatasetSpec
from flywheel.errors import DataError

CSV_BLOCK_BYTES = 8 << 20


def read_chunks(path: Path, spec: DatasetSpec, rows: int) -> Iterator[pd.DataFrame]:
    """Frames of at most `rows` rows, in file order; a file that cannot be read is a DataError."""
    import pyarrow as pa

    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: expected a .csv or .parquet file, got {suffix or 'none'}")
    try:
        batches = _csv_batches(path, spec) if suffix == ".csv" else _parquet_batches(path, rows)
        for table in _rebatch(batches, rows):
            yield table.to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise DataError(f"{path}: not a readable {kind} table ({exc})") from exc


def _parquet_batches(path: Path, rows: int) -> Iterator[Any]:
    import pyarrow.parquet as pq

    yield from pq.ParquetFile(path).iter_batches(batch_size=rows)


def _csv_batches(path: Path, spec: DatasetSpec) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(
            column_types={f.name: pa.string() for f in spec.features},
            strings_can_be_null=True,
        ),
    )
    yield from reader


def _rebatch(batches: Iterator[Any], rows: int) -> Iterator[Any]:
    """Arrow tables of `rows` rows (the last one shorter) from batches of any size."""
    import pyarrow as pa

    pending: list[Any] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)
