"""`flywheel shadow report`: the challenger against the champion, on the requests both answered.

Read from the inference log, where a shadowed request has the champion's rows and the
challenger's rows under one request id (`role`), record for record in the same order. Over the
window, per challenger version: records compared, the share predicted alike (agreement rate),
the mean |p_champion - p_challenger|, the challenger's errors (its rows without a prediction,
over every record it was offered) and its scoring time per request (median, 95th percentile).
Where labels arrived through `/feedback`, the live metrics of both on the same labelled
requests (each request labelled on its first record, as monitoring/live.py does), so the two
are compared on exactly the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.config import Params
from flywheel.data.task import Task
from flywheel.model_logs import model_logs
from flywheel.monitoring.feedback import read_feedback
from flywheel.monitoring.live import live_metrics
from flywheel.monitoring.logread import CHALLENGER_ROLE, CHAMPION_ROLE, LATENCY, ROLE, read_log
from flywheel.settings import Settings

COLUMNS = ["request_id", "time", "model_version", ROLE, LATENCY, "prediction", "probability"]
KEY = ["request_id", "record"]


def shadow_rows(log_folder: Path, since: datetime) -> pd.DataFrame:
    """Shadowed records since `since`, one row each: the champion's answer beside the
    challenger's (`*_champion`, `*_challenger` columns); empty when nothing was shadowed."""
    table = read_log(log_folder, COLUMNS, since=since, role=None)
    if table is None:
        return pd.DataFrame(columns=[*KEY, "model_version_challenger"])
    logged = table.to_pandas()
    logged = logged.astype({"request_id": "str", "model_version": "str", ROLE: "object"})
    logged[ROLE] = logged[ROLE].fillna(CHAMPION_ROLE).astype(str)
    logged["record"] = logged.groupby(["request_id", ROLE], sort=False).cumcount()
    champion = logged[logged[ROLE] == CHAMPION_ROLE]
    challenger = logged[logged[ROLE] == CHALLENGER_ROLE]
    # A request the champion answered twice cannot be: keep the first, as the live join does.
    champion = champion.drop_duplicates(KEY, keep="first")
    return challenger.merge(champion, on=KEY, suffixes=("_challenger", "_champion"))


def compare(rows: pd.DataFrame) -> dict[str, Any]:
    """Agreement, score distance, errors and latency of one challenger version's rows."""
    failed = rows["prediction_challenger"].isna()
    scored = rows[~failed]
    agree = (scored["prediction_challenger"].astype(str)
             == scored["prediction_champion"].astype(str))
    distance = _score_distance(scored)
    latency = rows.drop_duplicates("request_id")[f"{LATENCY}_challenger"].astype("float64")
    latency = latency.dropna().to_numpy()
    return {
        "requests": int(rows["request_id"].nunique()),
        "records": int(len(rows)),
        "compared_records": int(len(scored)),
        "agreement_rate": float(agree.mean()) if len(scored) else None,
        "mean_score_distance": float(distance.mean()) if len(distance) else None,
        "max_score_distance": float(distance.max()) if len(distance) else None,
        "errors": int(failed.sum()),
        "error_rate": float(failed.mean()) if len(rows) else None,
        "latency_s": {
            "median": float(np.median(latency)) if latency.size else None,
            "p95": float(np.quantile(latency, 0.95)) if latency.size else None,
        },
    }


def _score_distance(scored: pd.DataFrame) -> pd.Series:
    """|champion - challenger| per record: the positive-class probability (binary) or the
    predicted value (regression); a multiclass answer has no one score (agreement says it)."""
    if "probability_challenger" in scored:
        column = "probability"
    elif pd.api.types.is_numeric_dtype(scored["prediction_challenger"]):
        column = "prediction"
    else:
        return pd.Series([], dtype="float64")
    return (scored[f"{column}_challenger"].astype("float64")
            - scored[f"{column}_champion"].astype("float64")).abs().dropna()


def live_comparison(rows: pd.DataFrame, labels: pd.DataFrame | None,
                    task: Task) -> dict[str, Any]:
    """Live metrics of champion and challenger on the same labelled, scored requests, as
    monitoring/live.py computes them for the task."""
    firsts = rows[(rows["record"] == 0) & rows["prediction_challenger"].notna()]
    if labels is None:  # no labels yet: the merge below would find none either
        labels = pd.DataFrame({"request_id": pd.Series(dtype="str"), "label": pd.Series()})
    firsts = firsts.merge(labels[["request_id", "label"]].astype({"request_id": "str"}),
                          on="request_id", how="inner")
    if task.kind == "binary":
        y = (firsts["label"].astype(str) == task.classes[1]).to_numpy()
        answered = {role: firsts[f"probability_{role}"].to_numpy(dtype="float64")
                    for role in (CHAMPION_ROLE, CHALLENGER_ROLE)}
    else:
        typed = "float64" if task.kind == "regression" else "str"
        y = firsts["label"].to_numpy().astype(typed)
        answered = {role: firsts[f"prediction_{role}"].to_numpy().astype(typed)
                    for role in (CHAMPION_ROLE, CHALLENGER_ROLE)}
    return {role: live_metrics(task, y, scores) for role, scores in answered.items()}


def shadow_report(log_folder: Path, feedback_folder: Path, task: Task,
                  now: datetime, window_minutes: float) -> dict[str, Any]:
    """The comparison over the last `window_minutes`, per challenger version (oldest first)."""
    since = now - timedelta(minutes=window_minutes)
    rows = shadow_rows(log_folder, since)
    labels = read_feedback(feedback_folder) if len(rows) else None
    versions = {}
    for version, group in rows.groupby("model_version_challenger", sort=False):
        versions[str(version)] = {
            "champion_versions": sorted(group["model_version_champion"].astype(str).unique()),
            **compare(group),
            "live": live_comparison(group, labels, task),
        }
    return {"window": {"start": since.isoformat(), "end": now.isoformat(),
                       "minutes": window_minutes},
            "challengers": versions}


def compute_shadow_report(settings: Settings, params: Params, name: str, task: Task,
                          minutes: float | None = None) -> dict[str, Any]:
    """`shadow_report` for a registered model (its own log folders, labels checked by its
    task), with the versions its aliases point at now."""
    from flywheel.registry import store

    client = store.connect(settings)
    aliased = {alias: store.version_by_alias(client, name, alias)
               for alias in (store.CHAMPION, store.CHALLENGER)}
    logs = model_logs(settings, name, params.promote.model_name)
    report = shadow_report(logs.inference, logs.feedback, task,
                           datetime.now(UTC), minutes or params.monitor.window_minutes)
    return {"model_name": name,
            **{alias: None if v is None else str(v.version) for alias, v in aliased.items()},
            **report}


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report for a terminal: one line per challenger version, then its live metrics."""
    lines = [f"{report['model_name']}: champion {report['champion'] or '-'}, challenger "
             f"{report['challenger'] or '- (no challenger alias: not shadowing)'}; window "
             f"{report['window']['start']} .. {report['window']['end']}"]
    if not report["challengers"]:
        lines.append("no shadowed requests in the window")
    for version, c in report["challengers"].items():
        lines.append(
            f"challenger {version}: {c['requests']} requests, {c['records']} records, "
            f"agreement {_share(c['agreement_rate'])}, mean |dp| "
            f"{_num(c['mean_score_distance'])}, errors {c['errors']} "
            f"({_share(c['error_rate'])}), latency median {_ms(c['latency_s']['median'])} "
            f"p95 {_ms(c['latency_s']['p95'])}")
        for role, live in c["live"].items():
            lines.append(f"  live {role}: {live['labelled_rows']} labelled, roc_auc "
                         f"{_num(live['roc_auc'])}, pr_auc {_num(live['pr_auc'])}, brier "
                         f"{_num(live['brier'])}")
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.1f} ms"
