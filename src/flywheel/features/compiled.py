"""The fitted transformer's arithmetic as plain numpy, for the request path.

scikit-learn's ColumnTransformer spends ~8 ms a call on input checks whatever the row count,
more than the model itself for one record. The fitted numbers (medians, means, scales,
category lists) are read from the transformer that was fitted, so the answers are the same;
a test holds the two to equality on the real table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flywheel.features.transformer import MISSING_CATEGORY


@dataclass(frozen=True)
class CompiledTransformer:
    numeric: list[str]
    fill: np.ndarray  # the imputer's medians
    mean: np.ndarray
    scale: np.ndarray
    categorical: list[str]
    lookups: list[dict[str, int]]  # category -> column offset within its one-hot block
    unknown: list[int]  # where an unseen value goes: the infrequent column, or -1 (none)
    offsets: list[int]  # first output column of each one-hot block (or the code's column)
    width: int
    codes: bool = False  # each categorical as one column of ordinal codes (HGB's native input)

    @property
    def categorical_columns(self) -> list[int]:
        """The columns holding category codes, for a model's `categorical_features`."""
        return list(self.offsets) if self.codes else []

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """float32 (half float64's memory at millions of rows; every candidate trains on it)."""
        n = len(frame)
        out = np.zeros((n, self.width), dtype="float32")
        k = len(self.numeric)
        if k:
            X = frame[self.numeric].to_numpy(dtype="float64", na_value=np.nan, copy=True)
            np.copyto(X, np.broadcast_to(self.fill, X.shape), where=np.isnan(X))
            X -= self.mean
            X /= self.scale
            out[:, :k] = X
        if self.codes:
            self._write_codes(frame, out)
            return out
        flat = out.reshape(-1)  # a view: one flat index per one-hot cell is cheaper than 2-D
        starts = np.arange(n, dtype=np.int64) * self.width
        for offset, index in self._block_indices(frame):
            rows = np.flatnonzero(index >= 0)  # unseen categories stay all-zero
            flat[starts[rows] + (offset + index[rows])] = 1.0
        return out

    def _write_codes(self, frame: pd.DataFrame, out: np.ndarray) -> None:
        """A level's code is its one-hot column's position; no code (unseen, none shared) is NaN,
        which HistGradientBoosting treats as missing."""
        for offset, index in self._block_indices(frame):
            out[:, offset] = np.where(index >= 0, index, np.nan)

    def _block_indices(self, frame: pd.DataFrame) -> Iterator[tuple[int, np.ndarray]]:
        """Each categorical's first output column and its values' positions in the block."""
        blocks = zip(self.categorical, self.lookups, self.unknown, self.offsets, strict=True)
        for name, lookup, unknown, offset in blocks:
            yield offset, block_columns(frame[name], lookup, unknown)


def block_columns(column: pd.Series, lookup: dict[str, int], unknown: int) -> np.ndarray:
    """Each value's column within its one-hot block (-1: none), found by Arrow's hash lookup.

    A Python loop over the values cost ~1 s a million rows per column; `index_in` runs in C
    on the Arrow strings a Parquet file or a pandas `str` column already holds.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(column, type=pa.string(), from_pandas=True)
    known = pa.array(list(lookup), type=pa.string())
    where = pc.index_in(values, value_set=known).fill_null(-1).to_numpy(zero_copy_only=False)
    columns = np.fromiter(lookup.values(), dtype=np.int64, count=len(lookup))
    blank = lookup.get(MISSING_CATEGORY, unknown)
    missing = values.is_null().to_numpy(zero_copy_only=False)
    return np.where(where >= 0, columns[where], np.where(missing, blank, unknown))


def compile_transformer(transformer: object) -> CompiledTransformer:
    """Read the fitted numbers out of `build_transformer`'s ColumnTransformer."""
    parts = {name: (pipe, cols) for name, pipe, cols in transformer.transformers_}  # type: ignore[attr-defined]
    numeric: list[str] = []
    fill = mean = scale = np.empty(0)
    if "numeric" in parts:
        pipe, numeric = parts["numeric"]
        imputer, scaler = pipe.steps[0][1], pipe.steps[1][1]
        fill, mean, scale = imputer.statistics_, scaler.mean_, scaler.scale_
    categorical: list[str] = []
    blocks: list[tuple[list[str], object]] = []
    if "categorical" in parts:
        pipe, categorical = parts["categorical"]
        encoder = pipe.steps[-1][1]
        rare_sets = getattr(encoder, "infrequent_categories_", None) or [None] * len(
            encoder.categories_
        )
        blocks = [
            ([str(c) for c in categories], rare)
            for categories, rare in zip(encoder.categories_, rare_sets, strict=True)
        ]
    lookups, unknown, offsets, width = lay_out_blocks(len(numeric), blocks)
    return CompiledTransformer(
        numeric=list(numeric),
        fill=np.asarray(fill, dtype="float64"),
        mean=np.asarray(mean, dtype="float64"),
        scale=np.asarray(scale, dtype="float64"),
        categorical=list(categorical),
        lookups=lookups,
        unknown=unknown,
        offsets=offsets,
        width=width,
    )


def lay_out_blocks(
    start: int, blocks: Iterable[tuple[list[str], object]], codes: bool = False
) -> tuple[list[dict[str, int]], list[int], list[int], int]:
    """Each categorical's lookup, the column its unseen values go to (-1: none) and its first
    output column, after `start` numeric columns; then the total width. A block is one-hot
    columns, or one column of codes when `codes`; `blocks` is (categories, rare) per feature."""
    lookups: list[dict[str, int]] = []
    unknown: list[int] = []
    offsets: list[int] = []
    width = start
    for categories, rare in blocks:
        lookup, columns, unseen = _block_lookup(categories, rare)
        offsets.append(width)
        lookups.append(lookup)
        unknown.append(unseen)
        width += 1 if codes else columns
    return lookups, unknown, offsets, width


def _block_lookup(categories: list[str], rare: object) -> tuple[dict[str, int], int, int]:
    """Category -> output column of one one-hot block, the block's width, and where unseen
    values go (the shared column, or -1 when nothing was grouped).

    scikit-learn keeps frequent categories in their order and puts one column for all
    infrequent ones last; `rare` is that column's categories (None when nothing was grouped).
    """
    grouped = {str(c) for c in rare} if rare is not None else set()  # type: ignore[attr-defined]
    kept = [c for c in categories if c not in grouped]
    lookup = {c: i for i, c in enumerate(kept)}
    lookup |= dict.fromkeys(grouped, len(kept))
    return lookup, len(kept) + (1 if grouped else 0), len(kept) if grouped else -1
