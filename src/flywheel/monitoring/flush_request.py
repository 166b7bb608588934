"""Asking the service's log writers to write what they buffer now, through the log's folder.

The writer rolls a file every `serve.inference_log_roll_seconds` (or `roll_rows`); a reader
that must see a request answered a moment ago (`/feedback` for it, `flywheel monitor`) touches
`.flush-requested` in the model's log folder instead of waiting for the roll. Every writer of
that folder (each worker of each service on the host, whichever process the reader is) checks
the file's time at each poll (`POLL_S`, a `stat`), writes its buffered rows and touches
`.flush-done`. A file, not a signal: readers do not know the writers' processes, and a
folder on shared storage reaches writers on other hosts too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

REQUEST = ".flush-requested"
DONE = ".flush-done"
STEP_S = 0.05
WAIT_S = 1.5  # what a reader waits at most for the writers (none running: it waits all of it)
GRACE_S = 0.5  # over two writer polls (serving.inference_log.POLL_S = 0.2 s)


def request_flush(folder: Path) -> int:
    """Touch the request; its time (ns), which a writer's `.flush-done` reaches once served."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REQUEST
    path.touch()
    os.utime(path)
    return path.stat().st_mtime_ns


def requested_since(folder: Path, seen_ns: int) -> int | None:
    """The request's time when it is newer than `seen_ns` (the writer's last one); else None."""
    try:
        stamp = (folder / REQUEST).stat().st_mtime_ns
    except OSError:
        return None
    return stamp if stamp > seen_ns else None


def mark_done(folder: Path) -> None:
    """The writer's answer: what was buffered when the request came is on disk."""
    path = folder / DONE
    path.touch()
    os.utime(path)


def flush_and_wait(folder: Path, wait_s: float, until: Callable[[], bool] | None = None) -> bool:
    """Ask for a flush and wait (at most `wait_s`) until a writer answered and `until()` holds.

    Once one writer answered, the others (polling as often) get `GRACE_S` more to answer too,
    so a request id no worker ever logged does not hold the caller for the whole `wait_s`.
    False when that did not happen in time: no service writes this folder now, or the id is
    not in any buffer; what is on disk is then all there is to read.
    """
    if wait_s <= 0:  # the folder may not exist yet: a writer creates it at its first roll
        return False
    asked = request_flush(folder)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(STEP_S)
        if _answered(folder, asked):
            if until is None or until():
                return True
            deadline = min(deadline, time.monotonic() + GRACE_S)
    return until is not None and until()


def _answered(folder: Path, asked: int) -> bool:
    try:
        return (folder / DONE).stat().st_mtime_ns >= asked
    except OSError:
        return False
