"""train: fit every candidate on the train split, select on the valid split, save the best.

Load the encoded matrices → `training.rungs.search_candidates` (successive halving, the fits
of a rung concurrent) and `select_best` among the finalists → write model.pkl (sealed:
steps/sealed.py) and candidates.json, with the compute each candidate got (rank 0's alone under
a multi-node launcher).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.steps.context import StepContext
from flywheel.steps.inputs import MODEL_FILE, decoded_split, training_inputs
from flywheel.steps.sealed import write_sealed

if TYPE_CHECKING:
    from flywheel.data.task import Task
    from flywheel.model import TabularModel
    from flywheel.training.candidates import CandidateResult

log = logging.getLogger(__name__)
CANDIDATES_FILE = "candidates.json"
SEARCH_FILE = "search.json"  # the Optuna study, when train.search is on


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.data.task import task_of
    from flywheel.model import model_bytes
    from flywheel.training.candidates import encoding_for, select_best, selection_key
    from flywheel.training.executor import release_workers
    from flywheel.training.launcher import rank_outputs
    from flywheel.training.rungs import search_candidates

    cfg, task = ctx.params.train, task_of(ctx.spec)
    if ctx.spec.is_image:
        return _run_images(ctx, task)
    kinds = {encoding_for(c) for c in cfg.candidates}
    inputs, encodings, y_train, y_valid = training_inputs(ctx, kinds)
    with rank_outputs(ctx.out("train")) as out:
        searched = search_candidates(
            cfg, inputs, y_train, y_valid, checkpoint_dir=out, progress=log.info, task=task
        )
        best = select_best(searched.finalists, cfg.selection_metric, task)
        tuned = _tuned(ctx, inputs, (y_train, y_valid), out, best) if cfg.search.enabled else None
        release_workers()
        del inputs
        results = searched.results + ([tuned] if tuned else [])
        best = select_best([best, tuned], cfg.selection_metric, task) if tuned else best
        write_sealed(out / MODEL_FILE, model_bytes(_model(ctx, best, encodings)),
                     ctx.settings.signing_key)
        table = _candidates_table(results, best, searched.failed)
        (out / CANDIDATES_FILE).write_text(json.dumps(table, indent=2, default=str))
    return _summary(searched.results, best, table, selection_key(cfg.selection_metric, task))


def _candidates_table(results: list[CandidateResult], best: CandidateResult,
                      failed: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """candidates.json: each candidate's valid metrics and the compute it got (rows, seconds,
    rung reached, why it stopped), failed ones included."""
    return [
        {"name": r.name, "valid": r.valid_metrics, "details": r.details, "compute": r.compute,
         "selected": r is best}
        for r in results
    ] + [{"name": name, "valid": {}, "details": {}, "compute": compute, "selected": False}
         for name, compute in failed.items()]


def _summary(results: list[CandidateResult], best: CandidateResult,
             table: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return {
        "selected": best.name,
        "valid": {r.name: round(r.valid_metrics[key], 4) for r in results},
        "compute": {row["name"] + (" (search)" if row["details"].get("params") else ""):
                    _compute_line(row["compute"]) for row in table},
    }


def _run_images(ctx: StepContext, task: Task) -> dict[str, Any]:
    """An image dataset: the CNN and the pixel baseline on decoded pixels, each on every
    training image; the better on the valid split wrapped with the spec's decoding as an
    ImageModel."""
    from flywheel.images.model import ImageModel
    from flywheel.model import model_bytes
    from flywheel.training.candidates import select_best, selection_key
    from flywheel.training.images import train_image_candidates
    from flywheel.training.launcher import rank_outputs

    cfg = ctx.params.train
    train, valid = decoded_split(ctx, "train"), decoded_split(ctx, "valid")
    with rank_outputs(ctx.out("train")) as out:
        results = train_image_candidates(cfg, task, train, valid, log.info, out)
        for r in results:
            r.compute = {"rows": len(train[0]),
                         "seconds": round(r.seconds, 1), "rung": 0, "stopped": "all rows"}
        best = select_best(results, cfg.selection_metric, task)
        params = cfg.cnn.model_dump() if best.name == "cnn" else cfg.logreg.model_dump()
        model = ImageModel(spec=ctx.spec, network=best.estimator, candidate=best.name,
                           params=params, valid_metrics=best.valid_metrics)
        write_sealed(out / MODEL_FILE, model_bytes(model), ctx.settings.signing_key)
        table = _candidates_table(results, best, {})
        (out / CANDIDATES_FILE).write_text(json.dumps(table, indent=2, default=str))
    return _summary(results, best, table, selection_key(cfg.selection_metric, task))


def _tuned(ctx: StepContext, inputs: dict[str, Any], y: tuple[Any, Any], out: Path,
           best: CandidateResult) -> CandidateResult | None:
    """The Optuna search's best full fit (`train.search`), written with its trials to
    search.json; None when it tunes nothing (a bring-your-own winner) or no trial finished."""
    from flywheel.data.task import task_of
    from flywheel.training.candidates import selection_key
    from flywheel.training.custom import is_custom
    from flywheel.training.tuning import tune

    cfg, task = ctx.params.train, task_of(ctx.spec)
    name = cfg.search.candidate or best.name
    if is_custom(name):
        log.warning("train.search tunes built-in candidates only; %s won, nothing searched", name)
        return None
    tuned = tune(cfg, name, inputs, y, out, task, selection_key(cfg.selection_metric, task))
    (out / SEARCH_FILE).write_text(json.dumps(tuned.summary(), indent=2, default=str))
    return tuned.best


def _compute_line(compute: dict[str, Any]) -> str:
    """One candidate's compute for the run summary: rows, seconds (per rung when several), and
    why it stopped."""
    fits = compute.get("fits", [])
    per_rung = f" ({' + '.join(f'{s:g}' for s in fits)} by rung)" if len(fits) > 1 else ""
    return f"{compute['rows']} rows, {compute['seconds']} s{per_rung}, {compute['stopped']}"


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
        params=dict(cfg.custom.get(best.name, {})) if custom else best.details.get(
            "params", getattr(cfg, best.name).model_dump()),
        valid_metrics=best.valid_metrics,
        origin=best.details.get("origin", {}) if custom else {},
    )
