"""Labels from `/feedback` on disk, in a bounded number of files.

Each accepted POST is written at once as its own small Parquet file (the client's 200 means
the labels are on disk). Once the folder holds more than `max_files` label files, they are
compacted into one: the latest label per request id (what `read_feedback` returns anyway),
without labels older than `max_age_s`. So the folder holds at most `max_files` + 1 files, and
its rows at most one per request id the inference log ever answered: request ids are issued by
the server, so clients cannot invent new ones to fill the disk. Compaction runs under an
exclusive `flock`, so two workers never compact the same files; a file written meanwhile is
read or left for the next time, never lost.
"""

from __future__ import annotations

import fcntl
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from flywheel.atomic import write_atomically
from flywheel.monitoring.feedback import read_feedback, store_feedback

logger = logging.getLogger(__name__)

FEEDBACK_GLOB = "feedback-*.parquet"
LOCK_NAME = ".compact.lock"


def store_labels(folder: Path, frame: pd.DataFrame, max_files: int, max_age_s: float) -> None:
    """Write accepted labels; compact the folder once it holds more than `max_files` files."""
    store_feedback(folder, frame)
    if len(list(folder.glob(FEEDBACK_GLOB))) > max_files:
        compact(folder, max_files, max_age_s)


def compact(folder: Path, max_files: int, max_age_s: float) -> Path | None:
    """Replace the label files by one holding the latest label per request id; None if another
    worker did it first (or no longer needed)."""
    with (folder / LOCK_NAME).open("a") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # another worker is compacting these very files
        files = sorted(folder.glob(FEEDBACK_GLOB))
        if len(files) <= max_files:
            return None
        latest = read_feedback(folder)
        if latest is None:
            return None
        cutoff = pd.Timestamp(datetime.now(UTC) - timedelta(seconds=max_age_s))
        kept = latest[latest["received_at"] >= cutoff][["request_id", "label", "received_at"]]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"feedback-{stamp}-{os.getpid()}-compacted.parquet"
        write_atomically(path, lambda tmp: kept.to_parquet(tmp, index=False))
        for old in files:
            old.unlink(missing_ok=True)
    logger.info("feedback: compacted %d label files into %s (%d labels, %d expired)",
                len(files), path.name, len(kept), len(latest) - len(kept))
    return path
