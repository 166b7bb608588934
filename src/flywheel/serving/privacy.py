"""Personal data in the inference log: hashed or dropped before it is written, and not kept.

A spec feature marked `pii: true` never reaches the log as sent. With `FLYWHEEL_PII_SALT` set
its value is replaced by an HMAC-SHA256 under that secret (the same customer still joins
across rows, but the value cannot be looked up without the salt); without a salt the column
is dropped. The writer also enforces retention (serve.inference_log_max_age_days and
serve.inference_log_max_bytes): older files go first, only the log's own files are deleted,
never the newest one (nor the one a writer just wrote), and every deletion is logged at WARNING:
losing rows is something an operator must see.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from pathlib import Path
from typing import Any

from flywheel.data.spec import DatasetSpec

logger = logging.getLogger(__name__)

HASH = "hash"
DROP = "drop"
LOG_GLOB = "inference-*.parquet"


def pii_policy(spec: DatasetSpec, salt: str | None) -> dict[str, str]:
    """Feature name -> `hash` or `drop`, for every feature the spec marks personal."""
    action = HASH if salt else DROP
    return {f.name: action for f in spec.features if f.pii}


def pseudonymize(value: Any, salt: str) -> str | None:
    """HMAC-SHA256 of the value's text under the secret salt; None stays None."""
    if value is None:
        return None
    return hmac.new(salt.encode(), str(value).encode(), hashlib.sha256).hexdigest()


def enforce_retention(directory: Path, max_age_s: float, max_bytes: int,
                      keep: Path | None = None) -> list[Path]:
    """Delete log files older than `max_age_s`, then the oldest until the rest fit `max_bytes`.

    The newest file and `keep` are never deleted, even when either alone is over `max_bytes`:
    one oversized file must not erase the rows just written.
    """
    try:
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in directory.glob(LOG_GLOB)]
    except OSError:
        return []  # the folder is gone or unreadable: the writer reports write errors itself
    files.sort()
    kept = {keep} | ({files[-1][2]} if files else set())
    cutoff = time.time() - max_age_s
    total = sum(size for _, size, _ in files)
    removed = []
    for mtime, size, path in files:
        if mtime >= cutoff and total <= max_bytes:
            break
        if path in kept:
            continue
        path.unlink(missing_ok=True)  # another worker may have removed it already
        total -= size
        removed.append(path)
    if removed:
        logger.warning("inference log retention: deleted %d file(s) (%s) to stay within %d days "
                       "and %d bytes", len(removed), ", ".join(p.name for p in removed[:5]),
                       round(max_age_s / 86400), max_bytes)
    return removed
