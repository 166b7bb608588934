"""New training rows from labelled production traffic: logged records joined to their labels.

A drift- or decay-triggered retrain learns from what the service answered since the data was
last versioned, once labels arrived for it (`/feedback`). The rules (README "How Flywheel
decides", retrain data):

- A label names a request id. Only requests that carried exactly one record are learned from:
  a label for a batch request does not say which of its records it is about (live metrics take
  the first; a training row must not guess). Batch requests are counted, not used.
- Each request id is learned from once: ids already appended (the ledger of provenance files
  kept next to the table, `data/provenance/`, versioned with it) are left out and counted.
- Personal features (`pii: true`) never reach the log as sent (hashed under a salt, or
  dropped: serving/privacy.py), so their raw values cannot be appended, and no fill rule would
  be honest: a spec with any personal feature does not learn from traffic (`personal_features`).
- Columns are the table's own: features as logged, cast back to the column's type (whole
  numbers of an integer column stay integers); the target as the table writes the label's
  class; an id column continues after the table's largest id when numeric, and is the request
  id when text; the time column (`featurize.split_by`) is the request's time; any other column
  is left empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flywheel.data.spec import DatasetSpec

LEDGER_DIR = "provenance"  # under data/: versioned, and restored, with the table
LEDGER_GLOB = "traffic-*.json"
LOG_COLUMNS = ["request_id", "time", "model_version"]


@dataclass(frozen=True)
class TrafficRows:
    rows: pd.DataFrame  # in the table's columns and order, ready to append
    provenance: dict[str, Any]  # what they are and where they came from (JSON-able)


def personal_features(spec: DatasetSpec) -> list[str]:
    """Features the log never keeps raw: while there are any, traffic is not learned from."""
    return [f.name for f in spec.features if f.pii]


def new_traffic_rows(
    spec: DatasetSpec,
    table: pd.DataFrame,
    logged: pd.DataFrame,
    labels: pd.DataFrame,
    known: set[str],
    time_column: str | None = None,
) -> TrafficRows:
    """The labelled, single-record, not yet appended requests of `logged`, as rows of `table`.

    `logged` holds the log's columns (request_id, time, model_version and the features);
    `labels` the latest label per request id (request_id, label); `known` the request ids
    already in the table.
    """
    records, left_out = labelled_new_records(logged, labels, known)
    rows = table_rows(spec, table, records, time_column)
    return TrafficRows(rows=rows, provenance=provenance(records, left_out))


def labelled_new_records(
    logged: pd.DataFrame, labels: pd.DataFrame, known: set[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Records to learn from, oldest first, with a `label` column; and counts of labelled
    requests left out (unlabelled ones are not counted: only labelled rows are read)."""
    ids = logged["request_id"].astype(str)
    per_request = ids.map(ids.value_counts())
    single = logged[(per_request == 1).to_numpy()].assign(request_id=ids[per_request == 1])
    batch_ids = set(ids[per_request > 1])
    latest = labels.assign(request_id=labels["request_id"].astype(str))
    latest = latest.drop_duplicates("request_id", keep="last")[["request_id", "label"]]
    joined = single.merge(latest, on="request_id", how="inner")
    seen = joined["request_id"].isin(known)
    fresh = joined[~seen].sort_values(["time", "request_id"], kind="stable")
    left_out = {
        "batch_requests": int(len(batch_ids)),
        "already_in_table": int(seen.sum()),
    }
    return fresh.reset_index(drop=True), left_out


def table_rows(
    spec: DatasetSpec, table: pd.DataFrame, records: pd.DataFrame, time_column: str | None
) -> pd.DataFrame:
    """`records` mapped onto the table's columns (see the module's rules)."""
    n = len(records)
    out: dict[str, Any] = {}
    for column in table.columns:
        if column == spec.target:
            out[column] = like(records["label"], table[column])
        elif column in spec.id_columns:
            out[column] = _new_ids(table[column], records["request_id"])
        elif column == time_column:
            out[column] = _times_like(records["time"], table[column])
        elif column in records.columns and column not in LOG_COLUMNS:
            out[column] = like(records[column], table[column])
        else:
            out[column] = pd.Series([None] * n, dtype=object)
    return pd.DataFrame({k: pd.Series(v).reset_index(drop=True) for k, v in out.items()})


def like(values: pd.Series, column: pd.Series) -> pd.Series:
    """`values` in the type of `column`: numbers for a numeric column (integers when all are
    whole and the column is an integer one), text otherwise; missing stays missing."""
    plain = pd.Series(values.to_numpy(dtype=object))
    if not pd.api.types.is_numeric_dtype(column.dtype):
        return plain.map(lambda v: v if v is None or v != v else _text(v))
    numbers = pd.to_numeric(plain, errors="coerce")
    whole = numbers.notna().all() and bool((numbers % 1 == 0).all())
    if pd.api.types.is_integer_dtype(column.dtype) and whole:
        return numbers.astype(column.dtype)
    return numbers.astype("float64")


def _text(value: Any) -> str:
    """Text as the table compares categories: 1.0 is "1" (flywheel.data.io)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _new_ids(column: pd.Series, request_ids: pd.Series) -> pd.Series:
    """A numeric id continues after the table's largest; a text id is the request id."""
    if not pd.api.types.is_numeric_dtype(column.dtype):
        return request_ids.astype(str).reset_index(drop=True)
    start = int(column.max()) + 1 if column.notna().any() else 1
    return pd.Series(range(start, start + len(request_ids)), dtype=column.dtype)


def _times_like(times: pd.Series, column: pd.Series) -> pd.Series:
    """Request times as the table's time column holds them: seconds since 1970 when it is
    numeric, ISO 8601 text otherwise."""
    stamps = pd.to_datetime(times, utc=True)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().reset_index(drop=True)
    return stamps.map(lambda t: t.isoformat()).reset_index(drop=True)


def provenance(records: pd.DataFrame, left_out: dict[str, int]) -> dict[str, Any]:
    """Which requests the rows are (ids in appended order), when they were answered, by which
    model versions, and what was left out and why."""
    times = pd.to_datetime(records["time"], utc=True)
    served = records["model_version"].astype(str).value_counts().sort_index()
    return {
        "source": "labelled production traffic (inference log joined to /feedback labels)",
        "rows": len(records),
        "request_ids": records["request_id"].astype(str).tolist(),
        "time_from": times.min().isoformat() if len(records) else None,
        "time_to": times.max().isoformat() if len(records) else None,
        "served_by": {str(k): int(v) for k, v in served.items()},
        "left_out": left_out,
    }


def summary_line(record: dict[str, Any]) -> str:
    """One line for logs and the version's lineage tag (the request ids stay in the file)."""
    ids = record["request_ids"]
    served = ", ".join(f"v{v}: {n}" for v, n in record["served_by"].items())
    return (
        f"{record['rows']} labelled rows from traffic (request ids {ids[0]} .. {ids[-1]}, "
        f"answered {record['time_from']} .. {record['time_to']}, served by {served}; "
        f"{record.get('file', 'provenance not written')})"
    )


def known_request_ids(data_dir: Path) -> set[str]:
    """Request ids already appended to the table, from its ledger."""
    ids: set[str] = set()
    for path in sorted((data_dir / LEDGER_DIR).glob(LEDGER_GLOB)):
        ids.update(json.loads(path.read_text()).get("request_ids", []))
    return ids


def ledger_path(data_dir: Path) -> Path:
    """The next provenance file: traffic-0001.json, traffic-0002.json, ..."""
    taken = [int(p.stem.split("-")[1]) for p in (data_dir / LEDGER_DIR).glob(LEDGER_GLOB)]
    return data_dir / LEDGER_DIR / f"traffic-{max(taken, default=0) + 1:04d}.json"


def read_traffic(
    log_folder: Path, feedback_folder: Path, spec: DatasetSpec
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The logged records (request columns and features) of the labelled requests, and the
    latest labels; None when either is empty. Only labelled rows are read off the log."""
    from flywheel.monitoring.feedback import read_feedback
    from flywheel.monitoring.logread import read_log

    labels = read_feedback(feedback_folder)
    if labels is None:
        return None
    ids = labels["request_id"].astype(str).tolist()
    table = read_log(log_folder, [*LOG_COLUMNS, *spec.feature_names], request_ids=ids)
    if table is None:
        return None
    return table.to_pandas(), labels
