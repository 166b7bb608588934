"""Reading tables and shaping them into what the model expects.

Reading never guesses silently: an unreadable or empty file is a `DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.data.rows import require_columns
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import category_text, task_of
from flywheel.errors import DataError

TABLE_SUFFIXES = {".csv", ".parquet", ".pq"}


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file by its suffix; `columns`: only those (and only those read
    from disk, for Parquet), ignoring names the file lacks so the caller's check names them."""
    _check_file(path)
    with _readable(path):
        if path.suffix.lower() == ".csv":
            wanted = None if columns is None else set(columns).__contains__
            frame = pd.read_csv(path, skipinitialspace=True, usecols=wanted)
        else:
            frame = pd.read_parquet(path, columns=_present(path, columns))
    if frame.empty:
        raise DataError(f"{path}: the table has no data rows")
    return frame


def table_batches(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """The table as frames of at most `rows` rows, for a reader that must not hold it whole.

    Parquet through Arrow's batch reader; CSV through the same pandas parser `read_table` uses,
    in chunks, so a batch holds what the whole read would (dtypes inferred per batch). Errors
    are `read_table`'s, for a bad row past the first batch too.
    """
    _check_file(path)
    with _readable(path):
        chunks = _chunks(path, rows)
        first = next(chunks, None)
    if first is None or first.empty:
        raise DataError(f"{path}: the table has no data rows")
    chunk: pd.DataFrame | None = first
    while chunk is not None:
        yield chunk
        with _readable(path):
            chunk = next(chunks, None)


def _chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    if path.suffix.lower() == ".csv":
        with pd.read_csv(path, skipinitialspace=True, chunksize=rows) as reader:
            yield from reader
        return
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=rows):
            yield batch.to_pandas()


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"{path}: expected a .csv or .parquet file, got {path.suffix or 'none'}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (expected a header row and data rows)")


@contextmanager
def _readable(path: Path) -> Iterator[None]:
    """A parser's failure as one `DataError` line naming the file and the parser's reason."""
    try:
        yield
    except (
        UnicodeDecodeError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        OSError,
        ValueError,
    ) as exc:
        kind = "CSV" if path.suffix.lower() == ".csv" else "Parquet"
        reason = " ".join(str(exc).split())[:300]  # parsers' messages span lines
        raise DataError(
            f"{path}: not a readable {kind} table ({type(exc).__name__}: {reason})"
        ) from exc


def _present(path: Path, columns: list[str] | None) -> list[str] | None:
    """Of `columns`, those the Parquet file has (its schema alone is read)."""
    if columns is None:
        return None
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    return [c for c in columns if c in names]


def feature_frame(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input: spec features in spec order, numerics as float64, categories as text.

    Training, evaluation and serving all go through here, so the logged signature and the
    served schema are the same (no int64-vs-double surprises at the pyfunc boundary).
    Categories stay in pandas' `str` dtype when they arrive so (files read by pandas or
    Arrow), and are otherwise an object array of str with NaN for blanks.
    """
    require_columns(spec, frame)
    out = {
        f.name: _numeric(frame[f.name]) if f.kind == "numeric" else _categories(frame[f.name])
        for f in spec.features
    }
    return pd.DataFrame(out, index=frame.index, copy=False)


def _numeric(column: pd.Series) -> np.ndarray:
    if column.dtype == np.float64:
        return column.to_numpy()
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _categories(column: pd.Series) -> Any:
    """Text as it is; whole numbers become their digits; no per-value Python for either.

    Converting a `str` column to Python objects cost ~0.3 s a million values, per column, in
    batch scoring; the compiled transformer reads the Arrow strings directly instead.
    """
    if pd.api.types.is_string_dtype(column.dtype) and not pd.api.types.is_object_dtype(column):
        return column.array
    if pd.api.types.is_integer_dtype(column.dtype) and not column.hasnans:
        return column.astype("str").array
    values = column.to_numpy(dtype=object, na_value=np.nan)
    missing = pd.isna(values)
    if pd.api.types.is_object_dtype(column) and all(isinstance(v, str) for v in values[~missing]):
        return values
    values[~missing] = [category_text(v) for v in values[~missing]]
    return values


def target_vector(spec: DatasetSpec, frame: pd.DataFrame) -> np.ndarray:
    """The target as the spec's task encodes it (data/task.py); a bad value is a `DataError`."""
    if spec.target not in frame.columns:
        raise DataError(f"target column {spec.target!r} is missing")
    return task_of(spec).encode_target(frame[spec.target], spec.target)
