"""A candidate's evaluation: metrics, slices, plot data, PNGs and an offline report, as values."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from flywheel.config import EvaluateParams
from flywheel.data.task import Task, lower_is_better
from flywheel.evaluation import curves, plots
from flywheel.evaluation.metrics import check_scores, classification_metrics
from flywheel.evaluation.multiclass_report import multiclass_parts
from flywheel.evaluation.regression_report import regression_parts
from flywheel.evaluation.slices import model_slices

log = logging.getLogger(__name__)


# The look of every offline report page (evaluation, monitoring).
def page_html(title: str, body: str) -> str:
    """One self-contained HTML page in the reports' shared style (evaluation, monitor)."""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>\n{PAGE_STYLE}\n</style>\n</head>\n<body>\n"
        f"{body}</body>\n</html>\n"
    )


PAGE_STYLE = """body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.better { color: #1a7f37; } .worse, .drifted { color: #c62828; }
figure { display: inline-block; margin: .5rem; }
img { max-width: 480px; }"""


@dataclass(frozen=True)
class Evaluation:
    """What evaluating a candidate found: metrics per model and the files that show it."""

    metrics: dict[str, dict[str, float]]  # `candidate`, and `champion` when one was scored
    files: dict[str, bytes]  # path inside the evaluate step's folder -> content


def evaluate_scores(
    task: Task,
    y_true: np.ndarray,
    proba: np.ndarray,
    params: EvaluateParams,
    frame: pd.DataFrame,
    champion_proba: np.ndarray | None,
    champion_label: str | None,
    sections: str = "",
) -> Evaluation:
    """Evaluate the candidate (and the champion, when given) on the same test rows; `proba` and
    `champion_proba` are the scores the task judges (evaluation/scores.py); `sections` is more
    HTML for the report (an image dataset's gallery of mistakes).

    Every task writes metrics.json (flat candidate metrics, for `dvc metrics`), slices.json
    (records with a `model` field), plots/*.png and report.html. Binary adds
    plots/confusion.csv and plots/{roc,pr,calibration}.json; multiclass plots/confusion.csv
    (class labels) and per_class.json; regression plots/predictions.json (actual, predicted,
    residual). The evaluate step writes them, whole or not at all.
    """
    if task.kind != "binary":
        return _task_evaluation(task, y_true, proba, params, frame, champion_proba, champion_label,
                                sections)
    y, p = check_scores(y_true, proba)
    models: dict[str, np.ndarray] = {"candidate": p}
    if champion_proba is not None:
        models["champion"] = check_scores(y, champion_proba, "champion_proba")[1]

    metrics, slices = _score(y, models, params, frame)
    curve_data = _curve_data(y, models, params)
    confusion = {name: curves.confusion_rows(y, s, params.threshold) for name, s in models.items()}
    pngs = _render_plots(curve_data, confusion)
    summary = (
        f"{int(y.size)} test rows, {int(y.sum())} positive; decision threshold "
        f"{params.threshold:g}."
    )
    page = render_report(metrics, slices, pngs, champion_label, summary, sections)
    files = {
        "metrics.json": _json(metrics["candidate"]),
        "slices.json": _json(slices),
        **{f"plots/{name}.json": _json(records) for name, records in curve_data.items()},
        "plots/confusion.csv": _confusion_csv(confusion["candidate"]),
        **{f"plots/{name}.png": png for name, png in pngs.items()},
        "report.html": page.encode("utf8"),
    }
    log.info("evaluated: %s", ", ".join(f"{k}={v:.4f}" for k, v in metrics["candidate"].items()))
    return Evaluation(metrics, files)


def _task_evaluation(
    task: Task,
    y_true: np.ndarray,
    scores: np.ndarray,
    params: EvaluateParams,
    frame: pd.DataFrame,
    champion_scores: np.ndarray | None,
    champion_label: str | None,
    sections: str = "",
) -> Evaluation:
    """A multiclass or regression evaluation: its parts, written like the binary files."""
    models = {"candidate": scores}
    if champion_scores is not None:
        models["champion"] = champion_scores
    if task.kind == "multiclass":
        y = np.asarray(y_true, dtype="int64")
        parts = multiclass_parts(task, y, models, params, frame)
    else:
        y = np.asarray(y_true, dtype="float64")
        parts = regression_parts(y, models, params, frame)
    page = render_report(
        parts.metrics, parts.slices, parts.pngs, champion_label, parts.summary,
        parts.sections + sections,
    )
    files = {
        "metrics.json": _json(parts.metrics["candidate"]),
        "slices.json": _json(parts.slices),
        **{path: _file_bytes(value) for path, value in parts.files.items()},
        **{f"plots/{name}.png": png for name, png in parts.pngs.items()},
        "report.html": page.encode("utf8"),
    }
    log.info(
        "evaluated: %s", ", ".join(f"{k}={v:.4f}" for k, v in parts.metrics["candidate"].items())
    )
    return Evaluation(parts.metrics, files)


def _file_bytes(value: object) -> bytes:
    """A frame as CSV (DVC's confusion template reads CSV), anything else as JSON."""
    if isinstance(value, pd.DataFrame):
        return value.to_csv(index=False, lineterminator="\n").encode("utf8")
    return _json(value)


def _score(
    y: np.ndarray, models: dict[str, np.ndarray], params: EvaluateParams, frame: pd.DataFrame
) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Metrics per model, and per-slice metrics as records naming their model."""
    metrics = {
        name: classification_metrics(y, scores, params.threshold) for name, scores in models.items()
    }
    slices = model_slices(frame, y, models, params)
    return metrics, slices


def _curve_data(
    y: np.ndarray, models: dict[str, np.ndarray], params: EvaluateParams
) -> dict[str, list[dict]]:
    """ROC, PR and calibration points for every scored model, each record naming its model."""
    return {
        "roc": [r for name, s in models.items() for r in curves.roc_points(y, s, name)],
        "pr": [r for name, s in models.items() for r in curves.pr_points(y, s, name)],
        "calibration": [
            r
            for name, s in models.items()
            for r in curves.calibration_points(y, s, name, params.calibration_bins)
        ],
    }


def _render_plots(
    curve_data: dict[str, list[dict]], confusion: dict[str, list[dict]]
) -> dict[str, bytes]:
    """PNG of each plot, rendered offline from the same Vega-Lite specs `dvc plots` draws."""
    cells = []
    for name, rows in confusion.items():
        counted = Counter((r["actual"], r["predicted"]) for r in rows)
        cells += [
            {"model": name, "actual": a, "predicted": b, "count": counted[(a, b)]}
            for a in ("negative", "positive")
            for b in ("negative", "positive")
        ]
    specs = {
        "confusion": plots.confusion_spec(cells),
        "roc": plots.roc_spec(curve_data["roc"]),
        "pr": plots.pr_spec(curve_data["pr"]),
        "calibration": plots.calibration_spec(curve_data["calibration"]),
    }
    return {name: plots.render_png(spec) for name, spec in specs.items()}


def _confusion_csv(rows: list[dict]) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=["actual", "predicted"])
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf8")


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=1, allow_nan=False) + "\n").encode("utf8")


def _fmt(value: object) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def render_report(
    metrics: dict[str, dict[str, float]],
    slices: list[dict],
    pngs: dict[str, bytes],
    champion_label: str | None,
    summary: str,
    sections: str = "",
) -> str:
    """A self-contained HTML page: no script, no stylesheet or image fetched from anywhere.
    `summary` says what rows were evaluated; `sections` are a task's extra tables."""
    has_champion = "champion" in metrics
    champion_name = html.escape(champion_label or "champion")
    images = "".join(
        f"<figure><img alt='{name}' src='data:image/png;base64,"
        f"{base64.b64encode(pngs[name]).decode('ascii')}'></figure>"
        for name in pngs
    )
    against = f" against champion {champion_name}" if has_champion else " (no champion yet)"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return page_html(
        "Flywheel evaluation",
        f"""<h1>Evaluation of the candidate{against}</h1>
<p>{summary} Written {stamp}.</p>
<h2>Metrics</h2>
{_metrics_table(metrics, champion_name)}
<h2>Plots</h2>
{images}
{sections}<h2>Slices</h2>
{_slice_table(slices)}
""",
    )


def _metrics_table(metrics: dict[str, dict[str, float]], champion_name: str) -> str:
    """Candidate against champion per metric, with the delta marked better or worse."""
    has_champion = "champion" in metrics
    head = "<tr><th>metric</th><th>candidate</th>"
    if has_champion:
        head += f"<th>champion ({champion_name})</th><th>delta</th><th></th>"
    body = []
    for name in metrics["candidate"]:
        cand = metrics["candidate"][name]
        row = f"<tr><td>{name}</td><td>{_fmt(cand)}</td>"
        if has_champion:
            champ = metrics["champion"][name]
            delta = cand - champ
            better = delta < 0 if lower_is_better(name) else delta > 0
            mark = "better" if better else ("same" if delta == 0 else "worse")
            row += f"<td>{_fmt(champ)}</td><td>{delta:+.4f}</td><td class='{mark}'>{mark}</td>"
        body.append(row + "</tr>")
    return f"<table>{head}</tr>{''.join(body)}</table>"


def _slice_table(slices: list[dict]) -> str:
    if not slices:
        return "<p>No slice reached the minimum number of rows.</p>"
    slice_cols = list(slices[0])  # model, column, value, the counts, the task's metrics
    slice_rows = "".join(
        "<tr>" + "".join(f"<td>{_fmt(record.get(c))}</td>" for c in slice_cols) + "</tr>"
        for record in slices
    )
    return f"<table><tr>{''.join(f'<th>{c}</th>' for c in slice_cols)}</tr>{slice_rows}</table>"
