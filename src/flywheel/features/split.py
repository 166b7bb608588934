"""Stable train/valid/test split: a row's split is a function of the row alone.

Why: the champion must be compared on rows it never trained on. Drawing the split over row
positions re-draws every row when the table grows, shrinks or is reordered (53% of a grown
table's new test rows had been the champion's training rows). Here each row gets a number u in
[0, 1) from a hash of its key, and the cut points are fixed shares, so no other row can move it.

The hash (scheme `HASH_SCHEME`, stable across processes, machines and library versions because
it uses only BLAKE2b and 64-bit integer arithmetic that we spell out here):

1. Each key cell becomes a 64-bit integer. A numeric column (ints, floats, bools) by value: its
   float64 bit pattern (little-endian), with -0.0 read as 0.0 and every NaN as the one quiet NaN,
   so 1 and 1.0 are the same key. Any other column by text: the first 8 bytes of
   BLAKE2b(UTF-8 text), read little-endian; a missing value is 0.
2. The row's hash starts at `mix(seed + GOLDEN)` and folds in each cell in key order:
   `h = mix(h XOR cell)`, where `mix` is the SplitMix64 finalizer (Steele, Lea & Flood 2014).
3. u = (h >> 11) / 2**53. Rows with u < test_size are test, u < test_size + valid_size valid,
   the rest train.

Keys: the spec's `id_columns` when it has any (a row keeps its split when a label is corrected),
otherwise the row's content, every feature plus the target, and its copy number: the k-th of
k+1 identical rows folds k in after its cells (`h = mix(h XOR mix(k + GOLDEN))` for k >= 1;
the first copy keeps the plain content hash). Identical rows cannot be told apart, so the
numbering depends on their count alone, not on row order, and appending rows never moves one.
Without copy numbers every copy of a (features, label) cell went to one side: on a table of few
distinct feature vectors (AER/Fertility: 254,654 rows, 14,289 distinct rows) the `yes` rows of
a vector landed in test while its `no` rows trained, and test ROC-AUC fell below chance (0.33;
0.62 with copy numbers, as with a random split: benchmarks/split_bias.py). Rules recorded
before copy numbers existed (`copies` false) are applied as they were.
Stratification is kept in expectation, not forced: cutting each class at its
own quantiles would make a row's side depend on the other rows. Each class's share of a split is
binomial around the configured share (tests/unit/test_split.py bounds it on the default table).

`featurize.split_by: <column>` cuts by time instead: the latest `test_size` of rows (by that
column) are test, the `valid_size` before them valid; the two cut points are part of the rule.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from flywheel.config import FeaturizeParams
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import Task
from flywheel.errors import DataError

HASH_SCHEME = "blake2b-cells+splitmix64-v1"
TARGET_KEY = "__target__"  # the encoded target featurize writes (steps/inputs.TARGET)
GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: the usual SplitMix64 increment
CANONICAL_NAN = 0x7FF8000000000000
SPLITS = ("train", "valid", "test")  # codes 0, 1, 2


@dataclass(frozen=True)
class SplitRule:
    """Everything needed to say, later and for any table, which rows a version trained on."""

    method: Literal["hash", "time"]
    key_columns: list[str]
    seed: int
    test_size: float
    valid_size: float
    split_by: str | None = None
    cutoffs: dict[str, Any] = field(default_factory=dict)  # time: valid_from, test_from
    scheme: str = HASH_SCHEME
    copies: bool = False  # identical rows numbered (content keys); older rules lack it

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-able data, for the registered version's lineage."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplitRule:
        if data.get("scheme") != HASH_SCHEME:
            raise DataError(
                f"split rule: scheme {data.get('scheme')!r} unknown (expected {HASH_SCHEME!r})"
            )
        return cls(**data)


def split_rule(spec: DatasetSpec, params: FeaturizeParams, frame: pd.DataFrame) -> SplitRule:
    """The rule featurize applies to `frame`; a time split's cut points are read off it."""
    if params.test_size + params.valid_size >= 0.9:
        raise DataError("featurize: test_size + valid_size leaves under 10% of rows to train on")
    keys = list(spec.id_columns) or [*spec.feature_names, TARGET_KEY]
    common = _shares(params)
    if params.split_by is None:
        return SplitRule(method="hash", key_columns=keys, copies=not spec.id_columns, **common)
    times = _times(frame, params.split_by)
    test_from, valid_from = np.quantile(
        times, [1 - params.test_size, 1 - params.test_size - params.valid_size], method="higher"
    )
    cutoffs = {"valid_from": float(valid_from), "test_from": float(test_from)}
    return SplitRule("time", keys, split_by=params.split_by, cutoffs=cutoffs, **common)


def content_rule(frame: pd.DataFrame, params: FeaturizeParams, copies: bool = False) -> SplitRule:
    """A hash rule keyed on every column of `frame` (benchmarks, and image files by content
    hash, where byte-identical files belong on one side); `copies` numbers identical rows as
    a table without id columns does."""
    common = _shares(params)
    return SplitRule(method="hash", key_columns=list(map(str, frame.columns)), copies=copies,
                     **common)


def _shares(params: FeaturizeParams) -> dict[str, Any]:
    return {"seed": params.seed, "test_size": params.test_size, "valid_size": params.valid_size}


def assign(frame: pd.DataFrame, rule: SplitRule) -> np.ndarray:
    """Split code per row of `frame` (0 train, 1 valid, 2 test) under `rule`."""
    if rule.method == "time":
        assert rule.split_by is not None
        t = _times(frame, rule.split_by)
        cut = rule.cutoffs
        return np.where(t >= cut["test_from"], 2, np.where(t >= cut["valid_from"], 1, 0))
    u = unit_hash(frame, rule.key_columns, rule.seed, copies=rule.copies)
    return np.where(u < rule.test_size, 2, np.where(u < rule.test_size + rule.valid_size, 1, 0))


def trained_on(frame: pd.DataFrame, rule: SplitRule | dict[str, Any]) -> np.ndarray:
    """Mask of the rows of `frame` that `rule` put in train or valid: rows a model under that
    rule has seen (valid rows chose its epochs and its candidate), so a fair comparison with it
    uses only the rest."""
    parsed = rule if isinstance(rule, SplitRule) else SplitRule.from_dict(rule)
    return assign(frame, parsed) < 2


def split_rows(
    frame: pd.DataFrame, y: np.ndarray, rule: SplitRule, task: Task | None = None
) -> dict[str, np.ndarray]:
    """Row numbers of train/valid/test (sorted, table order), checked for what `task` (binary
    when None) needs of each split to train and judge a model."""
    codes = assign(frame, rule)
    rows = {name: np.flatnonzero(codes == code) for code, name in enumerate(SPLITS)}
    kind = task.kind if task else "binary"
    for name, taken in rows.items():
        _SPLIT_CHECKS[kind](name, np.asarray(y)[taken], len(task.classes) if task else 2)
    return rows


def _both_classes(name: str, y: np.ndarray, n_classes: int) -> None:
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        raise DataError(
            f"featurize: the {name} split has {len(y)} rows and {positives} positives; "
            "it needs both classes (a larger table, or larger featurize shares)"
        )


def _every_class_in_train(name: str, y: np.ndarray, n_classes: int) -> None:
    """Train must see every class (a class never trained on is never predicted); valid and
    test need two classes at least to judge anything."""
    found = len(np.unique(y))
    needed = n_classes if name == "train" else 2
    if found < needed:
        raise DataError(
            f"featurize: the {name} split has {len(y)} rows holding {found} of {n_classes} "
            f"classes; it needs {'every class' if name == 'train' else 'two'} (a larger "
            "table, or larger featurize shares)"
        )


def _enough_rows(name: str, y: np.ndarray, n_classes: int) -> None:
    if len(y) < 2:
        raise DataError(
            f"featurize: the {name} split has {len(y)} rows; a regression needs two at least "
            "(a larger table, or larger featurize shares)"
        )


_SPLIT_CHECKS = {
    "binary": _both_classes,
    "multiclass": _every_class_in_train,
    "regression": _enough_rows,
}


def split_frame(
    frame: pd.DataFrame, y: np.ndarray, rule: SplitRule, task: Task | None = None
) -> dict[str, pd.DataFrame]:
    """`split_rows` applied to a frame: one new frame per split, rows in table order."""
    return {
        name: frame.iloc[rows].reset_index(drop=True)
        for name, rows in split_rows(frame, y, rule, task).items()
    }


def unit_hash(frame: pd.DataFrame, columns: list[str], seed: int,
              copies: bool = False) -> np.ndarray:
    """u in [0, 1) per row from its `columns`, and with `copies` its copy number among rows
    identical in them (see the module docstring for the exact scheme)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"split key column(s) {', '.join(map(repr, missing))} not in the table "
            f"(the split is keyed on {columns})"
        )
    h = np.full(len(frame), mix(np.uint64((seed + GOLDEN) % 2**64)), dtype=np.uint64)
    for column in columns:
        h = mix(h ^ cell_codes(frame[column]))
    if copies:
        k = pd.Series(h).groupby(h, sort=False).cumcount().to_numpy(dtype=np.uint64)
        h = np.where(k > 0, mix(h ^ mix(k + np.uint64(GOLDEN))), h)
    return (h >> np.uint64(11)).astype(np.float64) / 2.0**53


def mix(x: Any) -> Any:
    """SplitMix64's finalizer: a bijection of 64-bit integers that spreads every input bit."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def cell_codes(column: pd.Series) -> np.ndarray:
    """One 64-bit integer per cell: numbers by value, anything else by its text."""
    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype="float64", na_value=np.nan) + 0.0  # -0.0 + 0.0 is 0.0
        bits = values.astype("<f8").view("<u8").astype(np.uint64)
        return np.where(np.isnan(values), np.uint64(CANONICAL_NAN), bits)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    digests = np.array(
        [_text_code(str(v)) for v in np.asarray(uniques, dtype=object)] + [0], dtype=np.uint64
    )
    return digests[codes]  # code -1 (missing) picks the trailing 0


def _text_code(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _times(frame: pd.DataFrame, column: str) -> np.ndarray:
    """`split_by` as numbers: numeric columns as they are, dates as seconds since 1970 (UTC)."""
    if column not in frame.columns:
        raise DataError(f"featurize.split_by: column {column!r} not in the table")
    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values.dtype):
        try:
            stamps = pd.to_datetime(values, utc=True, format="mixed")
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"featurize.split_by: column {column!r} is neither numbers nor dates ({exc})"
            ) from exc
        values = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    times = values.to_numpy(dtype="float64", na_value=np.nan)
    if np.isnan(times).any():
        raise DataError(f"featurize.split_by: column {column!r} has missing values")
    return times
