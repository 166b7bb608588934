"""An inference log and its `/feedback` labels as the services write them, for the canary's
live-metric readers (monitoring/canary_live.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def write_log(tmp_path: Path, rows: list[tuple[str, str, str, Any]],
              labels: dict[str, str]) -> tuple[Path, Path]:
    """One log file of (request id, role, model version, prediction) rows logged at AT, and the
    labels by request id; the two folders."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    log, feedback = tmp_path / "log", tmp_path / "feedback"
    log.mkdir()
    feedback.mkdir()
    ids, roles, versions, predictions = (list(c) for c in zip(*rows, strict=True))
    pq.write_table(pa.table({"request_id": ids, "role": roles, "model_version": versions,
                             "prediction": predictions,
                             "time": pa.array([AT] * len(ids), pa.timestamp("us", tz="UTC"))}),
                   log / "inference-20261203T120000000000-1-00001.parquet")
    pd.DataFrame({"request_id": list(labels), "label": list(labels.values()),
                  "received_at": [AT] * len(labels)}).to_parquet(feedback / "labels.parquet")
    return log, feedback
