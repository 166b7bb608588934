"""train: fit every candidate on the train split, select on the valid split, save the best.

Load the encoded matrices → `training.candidates.train_candidates` and `select_best` → write
model.pkl (sealed: steps/sealed.py) and candidates.json (rank 0's alone under a multi-node
launcher).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flywheel.steps.context import StepContext
from flywheel.steps.inputs import MODEL_FILE, training_inputs
from flywheel.steps.sealed import write_sealed

log = logging.getLogger(__name__)


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.model import TabularModel, model_bytes
    from flywheel.training.candidates import ENCODINGS, select_best, train_candidates
    from flywheel.training.launcher import rank_outputs

    cfg = ctx.params.train
    kinds = {ENCODINGS[c] for c in cfg.candidates}
    inputs, encodings, y_train, y_valid = training_inputs(ctx, kinds)
    with rank_outputs(ctx.out("train")) as out:
        results = train_candidates(
            cfg, inputs, y_train, y_valid, checkpoint_dir=out, progress=log.info
        )
        del inputs
        best = select_best(results, cfg.selection_metric)
        model = TabularModel(
            spec=ctx.spec,
            transformer=encodings[ENCODINGS[best.name]],
            estimator=best.estimator,
            candidate=best.name,
            threshold=0.5,  # evaluate's param decides; promote stamps it on the registered model
            params=getattr(cfg, best.name).model_dump(),
            valid_metrics=best.valid_metrics,
        )
        write_sealed(out / MODEL_FILE, model_bytes(model), ctx.settings.signing_key)
        table = [
            {
                "name": r.name,
                "valid": r.valid_metrics,  # timings go to the log: same inputs, same bytes
                "details": r.details,
                "selected": r is best,
            }
            for r in results
        ]
        (out / "candidates.json").write_text(json.dumps(table, indent=2, default=str))
    key = "log_loss" if cfg.selection_metric == "neg_log_loss" else cfg.selection_metric
    return {
        "selected": best.name,
        "valid": {r.name: round(r.valid_metrics[key], 4) for r in results},
    }
