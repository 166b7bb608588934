"""train: fit every candidate on the train split, select on the valid split, save the best.

Load the encoded matrices → `training.candidates.train_candidates` and `select_best` → write
model.pkl (sealed: steps/sealed.py) and candidates.json (rank 0's alone under a multi-node
launcher).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from flywheel.steps.context import StepContext
from flywheel.steps.inputs import MODEL_FILE, decoded_split, training_inputs
from flywheel.steps.sealed import write_sealed
from flywheel.training.launcher import rank_outputs

if TYPE_CHECKING:
    from flywheel.data.task import Task
    from flywheel.model import TabularModel
    from flywheel.training.candidates import CandidateResult

log = logging.getLogger(__name__)


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.data.task import task_of
    from flywheel.model import model_bytes
    from flywheel.training.candidates import (
        encoding_for,
        select_best,
        selection_key,
        train_candidates,
    )

    cfg, task = ctx.params.train, task_of(ctx.spec)
    if ctx.spec.is_image:
        return _run_images(ctx, task)
    kinds = {encoding_for(c) for c in cfg.candidates}
    inputs, encodings, y_train, y_valid = training_inputs(ctx, kinds)
    with rank_outputs(ctx.out("train")) as out:
        results = train_candidates(
            cfg, inputs, y_train, y_valid, checkpoint_dir=out, progress=log.info, task=task
        )
        del inputs
        best = select_best(results, cfg.selection_metric, task)
        write_sealed(out / MODEL_FILE, model_bytes(_model(ctx, best, encodings)),
                     ctx.settings.signing_key)
        (out / "candidates.json").write_text(_candidates_json(results, best))
    return _summary(results, best, selection_key(cfg.selection_metric, task))


def _summary(results: list[CandidateResult], best: CandidateResult, key: str) -> dict[str, Any]:
    return {
        "selected": best.name,
        "valid": {r.name: round(r.valid_metrics[key], 4) for r in results},
    }


def _candidates_json(results: list[CandidateResult], best: CandidateResult) -> str:
    table = [
        {
            "name": r.name,
            "valid": r.valid_metrics,  # timings go to the log: same inputs, same bytes
            "details": r.details,
            "selected": r is best,
        }
        for r in results
    ]
    return json.dumps(table, indent=2, default=str)


def _run_images(ctx: StepContext, task: Task) -> dict[str, Any]:
    """An image dataset: the CNN and the pixel baseline on decoded pixels, the better on the
    valid split wrapped with the spec's decoding as an ImageModel."""
    from flywheel.images.model import ImageModel
    from flywheel.model import model_bytes
    from flywheel.training.candidates import select_best, selection_key
    from flywheel.training.images import train_image_candidates

    cfg = ctx.params.train
    train, valid = decoded_split(ctx, "train"), decoded_split(ctx, "valid")
    with rank_outputs(ctx.out("train")) as out:
        results = train_image_candidates(cfg, task, train, valid, log.info)
        best = select_best(results, cfg.selection_metric, task)
        params = cfg.cnn.model_dump() if best.name == "cnn" else cfg.logreg.model_dump()
        model = ImageModel(spec=ctx.spec, network=best.estimator, candidate=best.name,
                           params=params, valid_metrics=best.valid_metrics)
        write_sealed(out / MODEL_FILE, model_bytes(model), ctx.settings.signing_key)
        (out / "candidates.json").write_text(_candidates_json(results, best))
    return _summary(results, best, selection_key(cfg.selection_metric, task))


def _model(ctx: StepContext, best: CandidateResult, encodings: dict[str, Any]) -> TabularModel:
    """The selected candidate with the encoding it trained on, its params and, for a
    bring-your-own one, where its code came from (for the lineage)."""
    from flywheel.model import TabularModel
    from flywheel.training.candidates import encoding_for
    from flywheel.training.custom import is_custom

    cfg = ctx.params.train
    custom = is_custom(best.name)
    return TabularModel(
        spec=ctx.spec,
        transformer=encodings[encoding_for(best.name)],
        estimator=best.estimator,
        candidate=best.name,
        threshold=0.5,  # evaluate's param decides; promote stamps it on the registered model
        params=dict(cfg.custom.get(best.name, {})) if custom else (
            getattr(cfg, best.name).model_dump()),
        valid_metrics=best.valid_metrics,
        origin=best.details.get("origin", {}) if custom else {},
    )
