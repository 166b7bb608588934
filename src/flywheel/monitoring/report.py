"""The monitor report: drift of the recent window and decay from labels, for the champion.

`compute_report` is what the CLI, the monitoring flow and (through `latest.json`) the exporter
use; it returns plain JSON-able data. It reads only the model's own log and labels, and its
streak from the model's own last report (`flywheel.model_logs`); `report_now` also writes the
report into the model's own monitor folder. A window below `monitor.min_rows` is reported as "not
enough traffic" and never as drift. `drifted` is the dataset verdict: Holm's rule over the
features and the score found drift (`drift.detected`) in `monitor.persistence` consecutive
windows; `drift.rule` states the rule and `excluded` names features not compared, and why.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flywheel.atomic import write_atomically
from flywheel.config import Params
from flywheel.errors import FlywheelError, RegistryError
from flywheel.model_logs import ModelLogs, model_logs
from flywheel.monitoring.drift import window_drift
from flywheel.monitoring.flush_request import WAIT_S, flush_and_wait
from flywheel.monitoring.live import live_report
from flywheel.monitoring.logread import read_log
from flywheel.monitoring.profile import load_profile, profile_task, score_column
from flywheel.monitoring.verdict import RULE, streak
from flywheel.settings import Settings

log = logging.getLogger(__name__)

LATEST = "latest.json"
PAGE = "report.html"


def report_now(settings: Settings, params: Params, model_name: str | None = None) -> dict[str, Any]:
    """Compute the report and write it where the model's exporter series come from."""
    report = compute_report(settings, params, model_name)
    write_report(report, report_folder(settings, params, report))
    return report


def compute_report(
    settings: Settings, params: Params, model_name: str | None = None
) -> dict[str, Any]:
    """Drift and decay of the version now serving (`champion`), over the inference log."""
    from flywheel.identity import registered_model
    from flywheel.registry import store

    name = registered_model(settings, params, model_name)
    logs = model_logs(settings, name, params.promote.model_name)
    client = store.connect(settings)
    champion = store.version_by_alias(client, name, store.CHAMPION)
    if champion is None:
        raise RegistryError(f"{name!r} has no champion to monitor; run `flywheel run` first")
    version = str(champion.version)
    profile = load_profile(champion.run_id, f"{name} version {version}")
    cfg = params.monitor
    now = datetime.now(UTC)
    since = now - timedelta(minutes=cfg.window_minutes)
    columns = [*profile["features"], score_column(profile)]
    flush_and_wait(logs.inference, WAIT_S)  # rows a running service has not rolled yet
    table = read_log(logs.inference, columns, since=since, version=version)
    rows = 0 if table is None else int(table.num_rows)
    enough = rows >= cfg.min_rows
    features, score, tests = window_drift(profile, table, cfg, _personal(settings, params, profile))
    excluded = tests.pop("excluded")
    if table is not None:
        score["bins"] = _score_bins(profile, table)
    detected = enough and (score["drifted"] or any(f["drifted"] for f in features.values()))
    window = {"rows": rows, "start": since.isoformat(), "end": now.isoformat()}
    run = streak(detected, _previous(logs), version, (since, now))
    live = live_report(
        logs.inference,
        logs.feedback,
        params,
        (profile_task(profile), profile.get("floors", {})),
        version,
        now,
    )
    score["column"] = score_column(profile)
    return {
        "model_name": name,
        "model_version": version,
        "generated_at": now.isoformat(),
        "window": window | {"min_rows": cfg.min_rows},
        "enough_traffic": enough,
        "drifted": run >= cfg.persistence,
        "drift": {
            "rule": RULE.format(tests=tests["tests"], alpha=cfg.alpha, persistence=cfg.persistence),
            "alpha": cfg.alpha,
            "min_psi": cfg.min_psi,
            "detected": detected,
            "streak": run,
            "persistence": cfg.persistence,
            **tests,
        },
        "excluded": excluded,
        "features": features,
        "score": score,
        "live": live,
    }


def _personal(settings: Settings, params: Params, profile: dict[str, Any]) -> dict[str, str]:
    """Features the current spec marks personal: never compared, whatever an older profile holds.
    Only the profile's own: params' spec is the default model's, maybe not this one's.

    Profiles written before personal features were left out hold their raw values, while the
    log holds hashes (or nothing): comparing them would flag every window.
    """
    from flywheel.data.spec import load_spec
    from flywheel.monitoring.profile import PII_REASON

    try:
        spec = load_spec(settings.root / params.data.spec)
    except FlywheelError as exc:
        log.warning("spec unreadable (%s): personal features known only from the profile", exc)
        return {}
    return {f.name: PII_REASON for f in spec.features if f.pii and f.name in profile["features"]}


def report_folder(settings: Settings, params: Params, report: dict[str, Any]) -> Path:
    """The model's own monitor folder, where its report goes (and its exporter series come from)."""
    return model_logs(settings, report["model_name"], params.promote.model_name).monitor


def _previous(logs: ModelLogs) -> dict[str, Any] | None:
    """The model's last report, for persistence; None when there is none or it is unreadable."""
    try:
        return read_report(logs.monitor)
    except (OSError, ValueError) as exc:
        log.warning("previous monitor report unreadable (%s): drift streak starts again", exc)
        return None


def _score_bins(profile: dict[str, Any], table: Any) -> dict[str, Any]:
    """Reference and current score shares per bin, for the report's distribution plot: per
    quantile bin of a numeric score, per class (then "other") of a predicted class."""
    from flywheel.monitoring.distances import shares
    from flywheel.monitoring.profile import categorical_counts, numeric_counts

    reference = profile["score"]
    column = table.column(score_column(profile))
    if reference.get("kind") == "categorical":
        current = shares(categorical_counts(reference["categories"], column))
        return {"categories": [*reference["categories"], "other"],
                "reference": reference["shares"][:-1], "current": current[:-1].tolist()}
    current = shares(numeric_counts(reference["edges"], column.to_numpy()))
    return {
        "edges": reference["edges"],
        "reference": reference["shares"][:-1],
        "current": current[:-1].tolist(),
    }


def write_report(report: dict[str, Any], folder: Path, html: bool = True) -> Path:
    """`latest.json` (atomically: the exporter never reads half of one) and the HTML page."""
    path = folder / LATEST
    text = json.dumps(report, indent=1, allow_nan=False) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf8"))
    if html:
        write_page(report, folder / PAGE)
    return path


def write_page(report: dict[str, Any], path: Path) -> None:
    from flywheel.monitoring.page import render_page

    page = render_page(report)
    write_atomically(path, lambda tmp: tmp.write_text(page, encoding="utf8"))


def read_report(folder: Path) -> dict[str, Any] | None:
    path = folder / LATEST
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text(encoding="utf8")))
