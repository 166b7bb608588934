"""evaluate: the candidate (and the champion, when there is one) on the test split.

Load the model and the test split, score the champion → `evaluation.report.evaluate_scores`
→ write metrics, slices, plots, the report, the predictions and which champion was scored, in
one folder swap: a kill never splits metrics from predictions.
"""

from __future__ import annotations

import io
import json
from typing import Any

from flywheel.atomic import write_folder
from flywheel.steps.champion import score_champion
from flywheel.steps.context import StepContext
from flywheel.steps.inputs import TARGET, read_split


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.evaluation.report import evaluate_scores
    from flywheel.model import load_model

    model = load_model(ctx.out("train") / "model.pkl")
    test = read_split(ctx, "test")
    y = test[TARGET].to_numpy()
    proba = model.positive_proba(test)
    version, champion_proba = score_champion(ctx, test)
    label = f"version {version}" if version else None
    evaluation = evaluate_scores(y, proba, ctx.evaluate_params, test, champion_proba, label)
    metrics = evaluation.metrics
    predictions = test.drop(columns=TARGET).assign(y_true=y, candidate=proba)
    if champion_proba is not None:
        predictions["champion"] = champion_proba
    champion = {"version": version, "metrics": metrics["champion"]} if version else None
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
    summary: dict[str, Any] = {k: round(v, 4) for k, v in metrics["candidate"].items()}
    if version:
        summary["champion"] = {
            "version": version,
            **{k: round(v, 4) for k, v in metrics["champion"].items()},
        }
    return summary
