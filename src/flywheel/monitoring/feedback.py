"""Delayed ground truth: labels for logged predictions, checked, stored and read back.

A label names the request id the service answered (the `X-Request-ID` it echoed) and the true
class (or value, for a regression). Labels are kept as small Parquet files under the feedback
folder (`logs/feedback/`), written whole or not at all, typed (text, or float64 for a
regression); a later label for the same request id replaces an earlier one. A request id the
inference log does not hold, or a label the task cannot have (a class outside the spec's, or
anything but a finite number for a regression), is refused and counted by the caller, never
stored.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.atomic import write_atomically
from flywheel.data.task import Task, category_text
from flywheel.monitoring.flush_request import WAIT_S, flush_and_wait
from flywheel.monitoring.logread import log_files

UNKNOWN_REQUEST = "unknown_request_id"
BAD_LABEL = "bad_label"
ACCEPTED = "accepted"
_SEQUENCE = count(1)


@dataclass
class RequestIndex:
    """Request ids present in the inference log; each immutable file is read once (one column)."""

    folder: Path
    _ids: set[str] = field(default_factory=set)
    _files: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def known(self, ids: list[str]) -> set[str]:
        import pyarrow.parquet as pq

        with self._lock:
            for path in log_files(self.folder):
                if path.name not in self._files:
                    column = pq.read_table(path, columns=["request_id"]).column(0)
                    self._ids.update(column.to_pylist())
                    self._files.add(path.name)
            return self._ids.intersection(ids)


def check_feedback(
    frame: pd.DataFrame, task: Task, index: RequestIndex
) -> dict[str, pd.DataFrame]:
    """Split labels into `accepted`, `bad_label` and `unknown_request_id` rows.

    A label is one of the task's classes (compared as text) or, for regression, a finite
    number; accepted labels come back typed (text, or float64).
    """
    frame = frame.assign(request_id=frame["request_id"].astype(str))
    if task.is_classification:
        labels = frame["label"].map(_label_text)
        bad = ~labels.isin(task.classes)
    else:
        labels = frame["label"].map(_label_number).astype("float64")
        bad = labels.isna()
    typed = frame.assign(label=labels)
    known = index.known(frame.loc[~bad, "request_id"].tolist())
    unknown = ~bad & ~frame["request_id"].isin(known)
    return {
        ACCEPTED: typed[~bad & ~unknown],
        BAD_LABEL: frame[bad],  # as sent: the refusal shows what was wrong
        UNKNOWN_REQUEST: typed[unknown],
    }


def expected_label(task: Task) -> str:
    """What a label must be, for the one-line refusals."""
    return f"one of {list(task.classes)}" if task.is_classification else "a finite number"


def _label_text(value: Any) -> str | None:
    """Labels are compared as text; a CSV's 1.0 for class "1" still matches."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return category_text(value)


def _label_number(value: Any) -> float | None:
    """A regression label: a real, finite number (not text, not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def store_feedback(folder: Path, frame: pd.DataFrame) -> Path | None:
    """Write accepted labels as one new Parquet file; nothing is written for an empty frame."""
    if frame.empty:
        return None
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"feedback-{stamp}-{os.getpid()}-{next(_SEQUENCE):05d}.parquet"
    table = pd.DataFrame(
        {
            "request_id": frame["request_id"].astype(str).to_numpy(),
            "label": frame["label"].to_numpy(),  # typed: text, or float64 for regression
            "received_at": pd.Series([now] * len(frame), dtype="datetime64[us, UTC]"),
        }
    )
    write_atomically(path, lambda tmp: table.to_parquet(tmp, index=False))
    return path


def read_feedback(folder: Path) -> pd.DataFrame | None:
    """All stored labels, the latest per request id; None when there are none."""
    import pyarrow.dataset as ds

    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    frame = ds.dataset([str(f) for f in files], format="parquet").to_table().to_pandas()
    frame = frame.sort_values("received_at", kind="stable")
    return frame.drop_duplicates("request_id", keep="last")


def check_fresh(
    frame: pd.DataFrame, task: Task, index: RequestIndex, wait_s: float = WAIT_S
) -> dict[str, pd.DataFrame]:
    """`check_feedback`, after asking the log's writers for rows not rolled yet when some ids
    are unknown: a label for a request answered a moment ago is accepted, not refused."""
    parts = check_feedback(frame, task, index)
    ids = set(parts[UNKNOWN_REQUEST]["request_id"])
    if not ids:
        return parts
    flush_and_wait(index.folder, wait_s, lambda: len(index.known(list(ids))) == len(ids))
    return check_feedback(frame, task, index)


def import_feedback(
    path: Path, task: Task, index: RequestIndex, folder: Path, skip_unknown: bool
) -> dict[str, int]:
    """Check a CSV/Parquet of labels and store it whole; any bad row refuses the whole file.

    With `skip_unknown`, request ids the log does not hold (sampled out, say) are left out and
    counted instead of refusing the file; a bad label (not a class of the task, or not a
    number for regression) always refuses it.
    """
    from flywheel.data.io import read_table
    from flywheel.errors import DataError

    frame = read_table(path)
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; expected request_id and label"
        )
    parts = check_fresh(frame[["request_id", "label"]], task, index)
    counts = {outcome: len(part) for outcome, part in parts.items()}
    bad, unknown = parts[BAD_LABEL], parts[UNKNOWN_REQUEST]
    if len(bad) or (len(unknown) and not skip_unknown):
        examples = [f"{r.request_id}={r.label!r}" for r in bad.head(3).itertuples()]
        examples += [str(r) for r in unknown["request_id"].head(3)]
        raise DataError(
            f"{path}: nothing stored: {len(bad)} label(s) not {expected_label(task)}, "
            f"{len(unknown)} request id(s) not in the inference log "
            f"(e.g. {', '.join(examples)}); fix the file"
            + ("" if len(bad) else " or pass --skip-unknown")
        )
    store_feedback(folder, parts[ACCEPTED])
    return counts
