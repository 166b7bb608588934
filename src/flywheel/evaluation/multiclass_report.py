"""A multiclass candidate's evaluation: metrics, per-class table, confusion matrix, slices.

The confusion matrix keeps DVC's convention (plots/confusion.csv: one `actual`, `predicted`
pair per test row, here class labels), so `dvc plots` and the offline PNG read the same rows.
"""

from __future__ import annotations

import html
from collections import Counter

import numpy as np
import pandas as pd

from flywheel.config import EvaluateParams
from flywheel.data.task import Task
from flywheel.evaluation import plots
from flywheel.evaluation.metrics import multiclass_metrics, per_class_table
from flywheel.evaluation.parts import ReportParts
from flywheel.evaluation.slices import model_slices


def multiclass_parts(
    task: Task,
    y: np.ndarray,
    models: dict[str, np.ndarray],
    params: EvaluateParams,
    frame: pd.DataFrame,
) -> ReportParts:
    """Each model's metrics and slices; the candidate's per-class table and confusion rows."""
    metrics = {name: multiclass_metrics(y, proba) for name, proba in models.items()}
    slices = model_slices(frame, y, models, params, task.kind)
    labels = np.asarray(task.classes, dtype=object)
    pairs = {name: (labels[y], labels[p.argmax(axis=1)]) for name, p in models.items()}
    per_class = per_class_table(y, models["candidate"], task.classes)
    actual, predicted = pairs["candidate"]
    return ReportParts(
        metrics=metrics,
        slices=slices,
        files={
            "per_class.json": per_class,
            "plots/confusion.csv": pd.DataFrame({"actual": actual, "predicted": predicted}),
        },
        pngs={"confusion": plots.render_png(plots.confusion_spec(_cells(task, pairs)))},
        summary=f"{y.size} test rows in {len(task.classes)} classes; the most probable class "
        "is the prediction.",
        sections=f"<h2>Per class (candidate)</h2>\n{_per_class_html(per_class)}\n",
    )


def _cells(task: Task, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Count of every (actual, predicted) class pair per model, zeros included."""
    cells = []
    for name, (actual, predicted) in pairs.items():
        counted = Counter(zip(actual, predicted, strict=True))
        cells += [
            {"model": name, "actual": a, "predicted": b, "count": counted[(a, b)]}
            for a in task.classes
            for b in task.classes
        ]
    return cells


def _per_class_html(rows: list[dict]) -> str:
    head = "".join(f"<th>{c}</th>" for c in ("class", "precision", "recall", "f1", "support"))
    body = "".join(
        f"<tr><td>{html.escape(r['class'])}</td><td>{r['precision']:.4f}</td>"
        f"<td>{r['recall']:.4f}</td><td>{r['f1']:.4f}</td><td>{r['support']}</td></tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
