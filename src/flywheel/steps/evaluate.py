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

from flywheel.atomic import write_folder
from flywheel.steps.champion import ChampionScores, score_champion
from flywheel.steps.context import StepContext
from flywheel.steps.inputs import TARGET, read_model, read_split


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.evaluation.report import evaluate_scores

    model = read_model(ctx)
    test = read_split(ctx, "test")
    y = test[TARGET].to_numpy()
    proba = model.positive_proba(test)
    scored = score_champion(ctx, test)
    # The report draws the champion next to the candidate only where it saw none of the rows.
    drawn = scored if scored is not None and scored.unseen.all() else None
    evaluation = evaluate_scores(
        y,
        proba,
        ctx.evaluate_params,
        test,
        drawn.proba if drawn else None,
        f"version {drawn.version}" if drawn else None,
    )
    predictions = test.drop(columns=TARGET).assign(y_true=y, candidate=proba)
    champion = None
    if scored is not None:
        predictions = predictions.assign(champion=scored.proba, champion_unseen=scored.unseen)
        champion = _champion_record(ctx, y, proba, scored)
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


def _champion_record(
    ctx: StepContext, y: np.ndarray, proba: np.ndarray, scored: ChampionScores
) -> dict[str, Any]:
    """Both models' metrics on the test rows the champion never trained on (the compared ones)."""
    from flywheel.evaluation.metrics import classification_metrics

    keep = scored.unseen
    threshold = ctx.evaluate_params.threshold
    return {
        "version": scored.version,
        "compared_rows": int(keep.sum()),
        "metrics": classification_metrics(y[keep], scored.proba[keep], threshold),
        "candidate_metrics": classification_metrics(y[keep], proba[keep], threshold),
    }
