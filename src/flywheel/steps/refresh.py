"""Before a triggered retrain: labelled production traffic appended to the table, versioned.

A run started for a reason (a drift or decay alert, through the retrain automation) would
otherwise find its data unchanged, skip every step and leave the drifting champion serving.
So it first appends the inference log's labelled requests that are not in the table yet
(`flywheel.monitoring.traffic_rows` says which and how), writes their provenance next to the
table (`data/provenance/traffic-NNNN.json`: request ids, time range, serving versions) and
versions `data/` in DVC at once: `flywheel data checkout --version N` restores table and
provenance together, like any other version. After the steps, `conclude` says what the run
did: when nothing ran, which data the champion already learned from and that it keeps serving
(in the log, the run summary, and `retrain.json` for the monitor exporter).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flywheel.atomic import write_atomically
from flywheel.steps.context import StepContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refresh:
    """What the refresh did: `new_rows`, `none` (nothing new) or `refused`, and its line."""

    outcome: str
    new_rows: int
    line: str
    provenance: dict[str, Any] | None = None


def refresh_from_traffic(ctx: StepContext, reason: str) -> Refresh:
    """Append the new labelled traffic to the table and version it; says why when it cannot."""
    from flywheel.data.io import read_table
    from flywheel.data.materialize import DATA_DIR, ensure_raw_data
    from flywheel.data.snapshot import is_tracked, snapshot
    from flywheel.monitoring import traffic_rows as traffic

    root = ctx.settings.root
    if not is_tracked(root, ctx.data_path):
        return _refused(
            f"{ctx.data_path} is outside data.dvc; only a table versioned in data/ "
            "is extended with traffic"
        )
    personal = traffic.personal_features(ctx.spec)
    if personal:
        return _refused(
            f"feature(s) {', '.join(personal)} are personal (pii): the inference "
            "log keeps them hashed or not at all, so their raw values cannot be "
            "appended"
        )
    ensure_raw_data(root)
    found = traffic.read_traffic(ctx.logs.inference, ctx.logs.feedback, ctx.spec)
    if found is None:
        return _nothing(
            f"no labelled traffic (log {ctx.logs.inference}, labels {ctx.logs.feedback})"
        )
    table = read_table(ctx.data_path)
    data_dir = root / DATA_DIR
    new = traffic.new_traffic_rows(
        ctx.spec, table, *found, traffic.known_request_ids(data_dir), ctx.params.featurize.split_by
    )
    if new.rows.empty:
        left = ", ".join(f"{k}: {v}" for k, v in new.provenance["left_out"].items())
        return _nothing(f"no new labelled traffic ({left})")
    ledger = traffic.ledger_path(data_dir)
    record = _provenance(ctx, new.provenance, len(table), reason, ledger.relative_to(root))
    _append(ctx.data_path, table, new.rows, ledger, record)
    snap = snapshot(root)
    line = (
        f"appended {traffic.summary_line(record)} to {ctx.spec.path}: {len(table)} -> "
        f"{len(table) + len(new.rows)} rows, data versioned as {snap.md5}"
    )
    log.info("retrain: %s", line)
    return Refresh("new_rows", len(new.rows), line, record)


def _refused(why: str) -> Refresh:
    line = f"not learning from traffic: {why}"
    log.warning("retrain: %s", line)
    return Refresh("refused", 0, line)


def _nothing(why: str) -> Refresh:
    log.info("retrain: %s", why)
    return Refresh("none", 0, why)


def _provenance(
    ctx: StepContext, found: dict[str, Any], rows_before: int, reason: str, file: Path
) -> dict[str, Any]:
    return {
        **found,
        "file": str(file),
        "table": str(ctx.spec.path),
        "rows_before": rows_before,
        "rows_after": rows_before + found["rows"],
        "reason": reason,
        "appended_at": datetime.now(UTC).isoformat(),
    }


def _append(
    path: Path, table: pd.DataFrame, rows: pd.DataFrame, ledger: Path, record: dict[str, Any]
) -> None:
    """Ledger first, then the table whole or not at all (a failed write takes the ledger back,
    so the requests are appended next time). A CSV keeps its bytes and gains lines."""
    ledger.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(ledger, lambda p: p.write_text(json.dumps(record, indent=2)))
    try:
        if path.suffix.lower() == ".csv":
            head = path.read_bytes()
            head += b"" if head.endswith(b"\n") else b"\n"
            tail = rows.to_csv(header=False, index=False).encode()
            write_atomically(path, lambda p: p.write_bytes(head + tail))
        else:
            grown = pd.concat([table, rows], ignore_index=True)
            write_atomically(path, lambda p: grown.to_parquet(p, index=False))
    except BaseException:
        ledger.unlink(missing_ok=True)
        raise


def conclude(
    ctx: StepContext, report: list[dict[str, Any]], refresh: Refresh | None, reason: str | None
) -> str | None:
    """Log and return the line a run that trained nothing ends with (None when a step ran);
    a triggered run also leaves its outcome for the monitor exporter."""
    from flywheel.monitoring.retrain_status import write_status

    ran = any("skipped" not in row["summary"] for row in report)
    if ran and refresh is None:
        return None
    since, champion = _versions(ctx)
    line = None if ran else _idle_line(ctx.model_name, since, champion, refresh)
    if line:
        log.info("%s", line)
    if reason is not None and refresh is not None:
        write_status(
            ctx.logs.monitor,
            {
                "outcome": _outcome(refresh, ran),
                "new_rows": refresh.new_rows,
                "since_version": since,
                "champion": champion,
                "reason": reason,
                "detail": line or refresh.line,
                "finished_at": datetime.now(UTC).isoformat(),
            },
        )
    return line


def _idle_line(name: str, since: str | None, champion: str | None, refresh: Refresh | None) -> str:
    keeps = (
        f"champion v{champion} of {name} keeps serving" if champion else f"{name} has no champion"
    )
    why = f"every step is up to date in dvc.lock, so nothing was trained or registered; {keeps}"
    data = f"v{since}" if since else "the data data.dvc names"
    if refresh is not None:
        return f"no new data since {data}: {refresh.line}; {why}"
    return f"nothing to do: data, code and params unchanged since {data}; {why}"


def _outcome(refresh: Refresh, ran: bool) -> str:
    if refresh.outcome in ("new_rows", "refused"):
        return refresh.outcome
    return "no_new_traffic" if ran else "no_new_data"


def _versions(ctx: StepContext) -> tuple[str | None, str | None]:
    """The latest version trained on the data data.dvc names now, and the champion."""
    from mlflow.exceptions import MlflowException

    from flywheel.data.snapshot import recorded_md5
    from flywheel.registry import store

    md5 = recorded_md5(ctx.settings.root)
    try:
        client = store.connect(ctx.settings)
        found = client.search_model_versions(f"name='{ctx.model_name}'")
        champion = store.version_by_alias(client, ctx.model_name, store.CHAMPION)
    except (MlflowException, OSError) as exc:
        log.warning("the registry cannot say which versions exist (%s)", exc)
        return None, None
    same = [
        int(v.version) for v in found if (v.tags or {}).get(f"{store.TAG_PREFIX}data_md5") == md5
    ]
    return (str(max(same)) if same else None), (str(champion.version) if champion else None)
