"""promote: register the candidate with its lineage, judge it, and move `champion` if it passes.

Load the model, the evaluation and the lineage → `registry.promote.promote` (log, register,
load-check, gate, aliases) → write decision.json. The data is snapshotted into DVC before
registering, so the recorded hash can be checked out later.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flywheel.atomic import write_atomically
from flywheel.registry.lineage import search_tags
from flywheel.steps.champion import SPLIT_RULE_TAG, score_champion
from flywheel.steps.context import StepContext
from flywheel.steps.inputs import (
    SPLIT_RULE_FILE,
    TARGET,
    judging_params,
    model_path,
    read_model,
    read_split,
    train_prior,
)

log = logging.getLogger(__name__)

DECISION_FILE = "decision.json"
SUMMARY_KEYS = ("model_name", "version", "promoted", "reason", "champion_before", "champion_after")


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.model import save_model
    from flywheel.registry.promote import PromoteInputs, promote

    ev = ctx.out("evaluate")
    # The decision threshold is an evaluate param: the registered model answers with the one
    # it was evaluated at, even when only that param changed since training.
    model = replace(read_model(ctx), threshold=ctx.evaluate_params.threshold)
    lineage = {
        **_lineage(ctx),
        **search_tags(ctx.out("train") / "search.json"),
        "candidate": model.candidate,
        "trained_at": _written_at(model_path(ctx)),
        **ctx.run_tags,
    }
    test = read_split(ctx, "test")
    champion, predictions, slices = _champion_scores(ctx, ev, test)
    if "champion_unseen" in predictions:  # compared only where neither model trained
        predictions = predictions[predictions.pop("champion_unseen")].reset_index(drop=True)
    with tempfile.TemporaryDirectory() as scratch:
        model_file = Path(scratch) / "model.pkl"
        save_model(model, model_file)
        inputs = PromoteInputs(
            model=model,
            model_file=model_file,
            metrics=json.loads((ev / "metrics.json").read_text()),
            predictions=predictions,
            slices=slices,
            champion=champion,
            artifact_dirs={
                "evaluation": ev,
                "validation": ctx.out("validate"),
                "training": ctx.out("train"),
            },
            sample=test.drop(columns=TARGET).head(20),
            lineage=lineage,
            model_name=ctx.model_name,
            prior=train_prior(ctx, model.task),
            logged_dicts=_reference_profile(ctx, model, test),
        )
        checker = ctx.started_checker() if ctx.started_checker else None
        params = judging_params(ctx)
        decision = promote(ctx.settings, params, ctx.spec, inputs, Path(scratch), checker)
    decision = {**decision, "registry": ctx.settings.mlflow_uri}
    decision_file = ctx.out("promote") / DECISION_FILE
    decision_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(
        decision_file, lambda p: p.write_text(json.dumps(decision, indent=2, default=str))
    )
    identical = {"identical_to": decision["identical_to"]} if "identical_to" in decision else {}
    return {**{k: decision[k] for k in SUMMARY_KEYS}, **identical}


def registered_here(ctx: StepContext) -> bool:
    """Whether the configured registry holds the version the last promote registered.

    Switching `FLYWHEEL_TRACKING_URI` to a new store leaves dvc.lock as it was; without this,
    the new registry would never get a champion from unchanged data.
    """
    from flywheel.registry import store

    path = ctx.out("promote") / DECISION_FILE
    try:
        decision = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if decision.get("registry", ctx.settings.mlflow_uri) != ctx.settings.mlflow_uri:
        return False  # (decisions written before the registry was recorded: check the version)
    try:
        version = store.connect(ctx.settings).get_model_version(
            decision["model_name"], str(decision["version"])
        )
    except Exception:  # not there (or unreachable): promote runs and says what is wrong
        return False
    return bool(version.run_id == decision.get("run_id"))


def _reference_profile(
    ctx: StepContext, model: Any, held_out: pd.DataFrame
) -> dict[str, dict[str, Any]]:
    """Drift is measured against the rows this version was trained on, and its scores against
    its scores on rows it never saw (the test split): scores on training rows are more extreme.
    """
    from flywheel.evaluation.scores import judged_scores
    from flywheel.monitoring.profile import ARTIFACT, build_profile

    frame = pd.read_parquet(ctx.out("featurize") / "train.parquet")
    scores = judged_scores(model.task, model.scores(held_out))
    spec = ctx.spec
    if spec.is_image:  # the columns an image request's log row holds: stats and embedding
        from flywheel.images.monitored import monitored_frame, monitored_spec

        spec, frame = monitored_spec(spec), monitored_frame(model, model.decode(frame))
    return {ARTIFACT: build_profile(spec, frame, scores, ctx.params.monitor)}


def _lineage(ctx: StepContext) -> dict[str, str]:
    """Where the model comes from: validation, code commit and the data, versioned first.

    The data under data.dvc is snapshotted (cache, data.dvc, remote) before registering, so the
    recorded hash can be checked out; a table outside it is traced by its file md5.
    """
    from flywheel.data.snapshot import is_tracked, snapshot
    from flywheel.registry.lineage import git_commit

    root = ctx.settings.root
    validation = json.loads((ctx.out("validate") / "result.json").read_text())
    stats = validation["statistics"]
    commit = git_commit(root)  # before the snapshot, which may rewrite data.dvc
    snap = snapshot(root) if is_tracked(root, ctx.data_path) else None
    rule = (ctx.out("featurize") / SPLIT_RULE_FILE).read_text()
    return {
        SPLIT_RULE_TAG: json.dumps(json.loads(rule), separators=(",", ":")),
        "validation": f"{validation['suite_name']}: {stats['successful_expectations']}/"
        f"{stats['evaluated_expectations']} expectations met on {stats['rows']} rows",
        "git_commit": commit,
        "data_md5": snap.md5 if snap else _content_hash(ctx.data_path),
        **({"data_dvc": snap.dvc_file} if snap else {}),
        "dataset": ctx.spec.name,
    }


def _content_hash(path: Path) -> str:
    """A table outside data.dvc by its md5; an image folder outside it by the SHA-256 of its
    files' names and digests."""
    from flywheel.registry.integrity import tree_sha256
    from flywheel.registry.lineage import file_md5

    return f"sha256:{tree_sha256(path)}" if path.is_dir() else file_md5(path)


def _champion_scores(
    ctx: StepContext, ev: Path, test: pd.DataFrame
) -> tuple[dict[str, Any] | None, pd.DataFrame, list[dict[str, Any]]]:
    """The champion's scores from evaluate, or fresh ones if the champion moved since.

    Under `dvc repro` promote can rerun alone (a promote param changed) after an earlier run
    moved the alias; comparing against a stale champion would judge the wrong model.
    """
    from flywheel.evaluation.metrics import task_metrics
    from flywheel.evaluation.scores import score_columns
    from flywheel.evaluation.slices import slice_metrics
    from flywheel.registry import store

    champion = json.loads((ev / "champion.json").read_text())
    predictions = pd.read_parquet(ev / "predictions.parquet")
    slices = json.loads((ev / "slices.json").read_text())
    current = store.version_by_alias(store.connect(ctx.settings), ctx.model_name, store.CHAMPION)
    if (str(current.version) if current else None) == (champion or {}).get("version"):
        return champion, predictions, slices
    log.warning("champion moved since evaluate ran; scoring the current one on the test split")
    slices = [s for s in slices if s["model"] == "candidate"]
    stale = [c for c in predictions if c == "champion" or c.startswith("champion_")]
    predictions = predictions.drop(columns=stale)
    scored = score_champion(ctx, test)
    if scored is None:
        return None, predictions, slices
    cfg, y, kind = ctx.evaluate_params, test[TARGET].to_numpy(), ctx.spec.task
    predictions = predictions.assign(
        **score_columns("champion", scored.proba), champion_unseen=scored.unseen
    )
    slices += [
        {"model": "champion", **record}
        for record in slice_metrics(
            test, y, scored.proba, cfg.slices, cfg.threshold, cfg.min_slice_rows, kind
        )
    ]
    keep = scored.unseen
    metrics = task_metrics(kind, y[keep], scored.proba[keep], cfg.threshold)
    return {"version": scored.version, "metrics": metrics}, predictions, slices


def _written_at(path: Path) -> str:
    """When the train step wrote the model: what `/metadata` reports as "trained at"."""
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).isoformat()
