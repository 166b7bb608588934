"""evaluate: the candidate (and the champion, when there is one) on the test split.

Load the model and the test split, score the champion → `evaluation.report.evaluate_scores`
→ write metrics, slices, plots, the report, the predictions and which champion was scored (with
the rows it never trained on, the only ones the gate compares), in one folder swap: a kill
never splits metrics from predictions.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd

from flywheel.atomic import write_folder
from flywheel.data.task import Task
from flywheel.steps.champion import ChampionScores, score_champion
from flywheel.steps.context import StepContext
from flywheel.steps.inputs import TARGET, read_model, read_split


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.evaluation.report import evaluate_scores
    from flywheel.evaluation.scores import judged_scores, score_columns

    model = read_model(ctx)
    task = model.task
    test = read_split(ctx, "test")
    y = test[TARGET].to_numpy()
    proba = judged_scores(task, model.scores(test))
    scored = score_champion(ctx, test)
    # The report draws the champion next to the candidate only where it saw none of the rows.
    drawn = scored if scored is not None and scored.unseen.all() else None
    evaluation = evaluate_scores(
        task,
        y,
        proba,
        ctx.evaluate_params,
        test,
        drawn.proba if drawn else None,
        f"version {drawn.version}" if drawn else None,
        _gallery(ctx, task, y, proba, test) if ctx.spec.is_image else "",
    )
    predictions = test.drop(columns=TARGET).assign(y_true=y, **score_columns("candidate", proba))
    champion = None
    if scored is not None:
        predictions = predictions.assign(
            **score_columns("champion", scored.proba), champion_unseen=scored.unseen
        )
        champion = _champion_record(ctx, task, y, proba, scored)
    parquet = io.BytesIO()
    predictions.to_parquet(parquet, index=False)
    write_folder(
        ctx.out("evaluate"),
        {
            **evaluation.files,
            "predictions.parquet": parquet.getvalue(),
            "champion.json": json.dumps(champion, indent=2).encode("utf8"),
        },
    )
    summary: dict[str, Any] = {k: round(v, 4) for k, v in evaluation.metrics["candidate"].items()}
    if champion:
        summary["champion"] = {
            "version": champion["version"],
            "rows": champion["compared_rows"],
            **{k: round(v, 4) for k, v in champion["metrics"].items()},
        }
    return summary


def _gallery(ctx: StepContext, task: Task, y: np.ndarray, proba: np.ndarray,
             test: pd.DataFrame) -> str:
    """The worst misclassified test images (evaluation/gallery.py); `proba` as judged: a
    binary task's P(positive) becomes the two columns the gallery ranks."""
    from flywheel.evaluation.gallery import gallery_html
    from flywheel.images.folder import IMAGE_BYTES_COLUMN, PATH_COLUMN

    columns = np.column_stack([1 - proba, proba]) if proba.ndim == 1 else proba
    return gallery_html(task, y, columns, list(test[IMAGE_BYTES_COLUMN]),
                        list(test[PATH_COLUMN]))


def _champion_record(
    ctx: StepContext, task: Task, y: np.ndarray, proba: np.ndarray, scored: ChampionScores
) -> dict[str, Any]:
    """Both models' metrics on the test rows the champion never trained on (the compared ones)."""
    from flywheel.evaluation.metrics import task_metrics

    keep, kind = scored.unseen, task.kind
    threshold = ctx.evaluate_params.threshold
    return {
        "version": scored.version,
        "compared_rows": int(keep.sum()),
        "metrics": task_metrics(kind, y[keep], scored.proba[keep], threshold),
        "candidate_metrics": task_metrics(kind, y[keep], proba[keep], threshold),
    }
