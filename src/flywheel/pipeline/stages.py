"""The thin I/O layer: each stage loads its inputs from disk, calls the library, saves outputs.

Both drivers call `run_step`; each stage returns a short summary for the end-of-run report.
"""

from __future__ import annotations

import json
import logging
import pickle
import tempfile
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.atomic import replacing_dir, write_atomically
from flywheel.errors import DataError, RegistryError, ValidationFailed
from flywheel.pipeline.context import StepContext

log = logging.getLogger(__name__)

TARGET = "__target__"  # 0/1 label column in the split files, next to the raw target
ENCODINGS_FILE = "encodings.pkl"  # featurize's fitted encodings, by name (features/encoding.py)


def validate(ctx: StepContext) -> dict[str, Any]:
    """Validate the table on disk as it is; a failure names it, its md5 and what is wrong.

    The file is never touched: a bad table stays where it arrived for inspection, and its md5
    goes into the step's result.json and the error, so the run's record says which bytes failed.
    """
    from flywheel.data.io import read_table
    from flywheel.registry.lineage import file_md5
    from flywheel.validation import validate_frame

    _ensure_default_data(ctx)
    path, out = ctx.data_path, ctx.out("validate")
    data = {"path": _shown(ctx, path), "md5": file_md5(path) if path.is_file() else None}
    try:
        frame = read_table(path)
        report = validate_frame(ctx.spec, frame, ctx.params.validate_, out)
    except DataError as exc:
        with replacing_dir(out) as staging:
            record = {"success": False, "error": str(exc), "data": data}
            (staging / "result.json").write_text(json.dumps(record, indent=2))
        raise DataError(f"{exc} (md5 {data['md5']}; file left as it is)") from exc
    result = json.loads((out / "result.json").read_text())
    write_atomically(
        out / "result.json",
        lambda p: p.write_text(json.dumps({**result, "data": data}, indent=2, default=str)),
    )
    if not report.success:
        problems = "; ".join(" ".join(f.line().split()) for f in report.failures)
        raise ValidationFailed(
            f"{data['path']} (md5 {data['md5']}) failed validation against spec "
            f"{ctx.spec.name!r}: {problems} (report: {out / 'docs' / 'index.html'})"
        )
    return {"rows": len(frame), "expectations": report.statistics.get("evaluated_expectations")}


def featurize(ctx: StepContext) -> dict[str, Any]:
    """Split the table and fit every encoding on the training rows.

    Only the spec's columns are read, and each split is written and freed before the next is
    cut, so the step holds the table about once (at millions of rows the copies were the peak).
    """
    from flywheel.data.io import feature_frame, read_table, target_vector
    from flywheel.features.encoding import fit_encoding
    from flywheel.features.split import split_rows, split_rule

    spec, cfg = ctx.spec, ctx.params.featurize
    keys = [*spec.id_columns, *([cfg.split_by] if cfg.split_by else [])]
    frame = read_table(ctx.data_path, columns=[*spec.feature_names, spec.target, *keys])
    y = target_vector(spec, frame)
    table = feature_frame(spec, frame).assign(**{TARGET: y})
    extra = [k for k in dict.fromkeys(keys) if k in frame.columns and k not in table.columns]
    keyed = pd.concat([table, frame[extra]], axis=1)
    rule = split_rule(spec, cfg, keyed)
    splits = split_rows(keyed, y, rule)
    del frame, keyed
    encodings: dict[str, Any] = {}
    sizes = {}
    with replacing_dir(ctx.out("featurize")) as out:
        (out / "split_rule.json").write_text(json.dumps(rule.to_dict(), indent=2))
        for name, rows in splits.items():
            part = table.take(rows).reset_index(drop=True)
            part.to_parquet(out / f"{name}.parquet", index=False)
            sizes[name] = len(part)
            if name == "train":
                encodings = {
                    kind: fit_encoding(spec, part, kind, ctx.params.featurize.max_categories)
                    for kind in ("one_hot", "native")
                }
            del part
        with (out / ENCODINGS_FILE).open("wb") as fh:
            pickle.dump(encodings, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return sizes


def train(ctx: StepContext) -> dict[str, Any]:
    from flywheel.model import TabularModel, save_model
    from flywheel.training.candidates import ENCODINGS, select_best, train_candidates
    from flywheel.training.launcher import rank_outputs

    cfg = ctx.params.train
    kinds = {ENCODINGS[c] for c in cfg.candidates}
    inputs, encodings, y_train, y_valid = _training_inputs(ctx, kinds)
    with rank_outputs(ctx.out("train")) as out:  # rank 0's alone under a multi-node launcher
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
        save_model(model, out / "model.pkl")
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
    return {
        "selected": best.name,
        "valid": {
            r.name: round(r.valid_metrics[_valid_key(cfg.selection_metric)], 4) for r in results
        },
    }


def evaluate(ctx: StepContext) -> dict[str, Any]:
    from flywheel.evaluation.report import write_evaluation
    from flywheel.model import load_model

    model = load_model(ctx.out("train") / "model.pkl")
    test = pd.read_parquet(ctx.out("featurize") / "test.parquet")
    y = test[TARGET].to_numpy()
    proba = model.positive_proba(test)
    version, champion_proba = _champion(ctx, test)
    predictions = test.drop(columns=TARGET).assign(y_true=y, candidate=proba)
    if champion_proba is not None:
        predictions["champion"] = champion_proba

    def write_own(folder: Path, metrics: dict[str, dict[str, float]]) -> None:
        champion = {"version": version, "metrics": metrics["champion"]} if version else None
        predictions.to_parquet(folder / "predictions.parquet", index=False)
        (folder / "champion.json").write_text(json.dumps(champion, indent=2))

    metrics = write_evaluation(
        ctx.out("evaluate"),
        y,
        proba,
        ctx.evaluate_params,
        test,
        champion_proba,
        f"version {version}" if version else None,
        also=write_own,  # in the same folder swap: a kill never splits metrics from predictions
    )
    summary: dict[str, Any] = {k: round(v, 4) for k, v in metrics["candidate"].items()}
    if version:
        summary["champion"] = {
            "version": version,
            **{k: round(v, 4) for k, v in metrics["champion"].items()},
        }
    return summary


def promote(ctx: StepContext) -> dict[str, Any]:
    from flywheel.model import load_model, save_model
    from flywheel.registry.promote import PromoteInputs
    from flywheel.registry.promote import promote as run_promotion

    ev = ctx.out("evaluate")
    # The decision threshold is an evaluate param: the registered model answers with the one
    # it was evaluated at, even when only that param changed since training.
    model = replace(
        load_model(ctx.out("train") / "model.pkl"), threshold=ctx.evaluate_params.threshold
    )
    lineage = {
        **_lineage(ctx),
        "candidate": model.candidate,
        "trained_at": _written_at(ctx.out("train") / "model.pkl"),
        **ctx.run_tags,
    }
    test = pd.read_parquet(ctx.out("featurize") / "test.parquet")
    champion, predictions, slices = _champion_scores(ctx, ev, test)
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
            reference=ctx.out("featurize") / "train.parquet",
            prevalence=train_prevalence(ctx),
        )
        decision = run_promotion(ctx.settings, ctx.params, ctx.spec, inputs, Path(scratch))
    decision_file = ctx.out("promote") / "decision.json"
    decision_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(
        decision_file, lambda p: p.write_text(json.dumps(decision, indent=2, default=str))
    )
    return {
        k: decision[k]
        for k in (
            "model_name",
            "version",
            "promoted",
            "reason",
            "champion_before",
            "champion_after",
        )
    }


def _lineage(ctx: StepContext) -> dict[str, str]:
    """Where the model comes from: validation, code commit and the data, versioned first.

    The data under data.dvc is snapshotted (cache, data.dvc, remote) before registering, so the
    recorded hash can be checked out; a table outside it is traced by its file md5.
    """
    from flywheel.data.snapshot import is_tracked, snapshot
    from flywheel.registry.lineage import file_md5, git_commit

    root = ctx.settings.root
    validation = json.loads((ctx.out("validate") / "result.json").read_text())
    stats = validation["statistics"]
    commit = git_commit(root)  # before the snapshot, which may rewrite data.dvc
    snap = snapshot(root) if is_tracked(root, ctx.data_path) else None
    return {
        "validation": f"{validation['suite_name']}: {stats['successful_expectations']}/"
        f"{stats['evaluated_expectations']} expectations met on {stats['rows']} rows",
        "git_commit": commit,
        "data_md5": snap.md5 if snap else file_md5(ctx.data_path),
        **({"data_dvc": snap.dvc_file} if snap else {}),
        "dataset": ctx.spec.name,
    }


STAGES: dict[str, Callable[[StepContext], dict[str, Any]]] = {
    "validate": validate,
    "featurize": featurize,
    "train": train,
    "evaluate": evaluate,
    "promote": promote,
}


def run_step(name: str, ctx: StepContext) -> dict[str, Any]:
    try:
        return STAGES[name](ctx)
    finally:
        release_memory()


def release_memory() -> None:
    """Hand what a step freed back to the operating system before the next step starts.

    `flywheel run` runs every step in one process; Arrow's allocator and glibc's keep freed
    pages for reuse, so without this each step's peak stacked on the last one's leftovers
    (at 1M rows the process held ~1 GB more than any single step needed).
    """
    import contextlib
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): no trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _ensure_default_data(ctx: StepContext) -> None:
    """The DVC-tracked default data is materialized on demand; other files are used as they are."""
    from flywheel.data.materialize import DEFAULT_TABLE, ensure_raw_data

    root = ctx.settings.root
    if (
        ctx.data_path.resolve() == (root / DEFAULT_TABLE).resolve()
        and (root / "data.dvc").is_file()
    ):
        how = ensure_raw_data(root)
        log.info("raw data %s: %s", DEFAULT_TABLE, how)


def _shown(ctx: StepContext, path: Path) -> str:
    """A path as the record shows it: relative to the project, so clones record the same."""
    root = ctx.settings.root.resolve()
    return (
        str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path)
    )


def _champion_scores(
    ctx: StepContext, ev: Path, test: pd.DataFrame
) -> tuple[dict[str, Any] | None, pd.DataFrame, list[dict[str, Any]]]:
    """The champion's scores from evaluate, or fresh ones if the champion moved since.

    Under `dvc repro` promote can rerun alone (a promote param changed) after an earlier run
    moved the alias; comparing against a stale champion would judge the wrong model.
    """
    from flywheel.evaluation.metrics import classification_metrics
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
    predictions = predictions.drop(columns="champion", errors="ignore")
    version, proba = _champion(ctx, test)
    if version is None or proba is None:
        return None, predictions, slices
    cfg, y = ctx.evaluate_params, test[TARGET].to_numpy()
    predictions["champion"] = proba
    slices += [
        {"model": "champion", **record}
        for record in slice_metrics(test, y, proba, cfg.slices, cfg.threshold, cfg.min_slice_rows)
    ]
    metrics = classification_metrics(y, proba, cfg.threshold)
    return {"version": version, "metrics": metrics}, predictions, slices


def _champion(ctx: StepContext, test: pd.DataFrame) -> tuple[str | None, np.ndarray | None]:
    """Score the champion on the candidate's test split, so the gate compares like for like."""
    from flywheel.registry import store
    from flywheel.registry.integrity import IntegrityError, load_verified

    name = ctx.model_name
    client = store.connect(ctx.settings)
    current = store.version_by_alias(client, name, store.CHAMPION)
    if current is None:
        return None, None
    uri = store.model_uri(name, current.version)
    try:
        served = load_verified(current)  # an altered artifact is refused before it is unpickled
        # Our own model inside the pyfunc scores the split directly: MLflow's schema check of
        # the same frame went value by value (~3 s per 200k rows).
        answer = served.unwrap_python_model().model.predict(test.drop(columns=TARGET))
    except IntegrityError:
        raise
    except Exception as exc:  # any failure here means the two cannot be compared
        raise RegistryError(
            f"champion {uri} cannot score this test split ({type(exc).__name__}: {exc}); if "
            "the dataset changed shape, register under a new promote.model_name"
        ) from exc
    return str(current.version), answer["probability"].to_numpy(dtype="float64")


def _training_inputs(
    ctx: StepContext, kinds: Collection[str]
) -> tuple[dict[str, Any], dict[str, Any], np.ndarray, np.ndarray]:
    """Each needed encoding's train/valid matrices, the encodings, and the two label vectors.

    The test split waits for evaluate; the split frames are dropped once encoded, so training
    holds only float32 matrices.
    """
    from flywheel.training.candidates import Matrices

    folder = ctx.out("featurize")
    with (folder / ENCODINGS_FILE).open("rb") as fh:
        encodings = pickle.load(fh)  # written by our own featurize step
    train, valid = (pd.read_parquet(folder / f"{name}.parquet") for name in ("train", "valid"))
    inputs = {
        kind: Matrices(
            encodings[kind].transform(train),
            encodings[kind].transform(valid),
            encodings[kind].categorical_columns,
        )
        for kind in sorted(kinds)
    }
    return inputs, encodings, train[TARGET].to_numpy(), valid[TARGET].to_numpy()


def _written_at(path: Path) -> str:
    """When the train step wrote the model: what `/metadata` reports as "trained at"."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).isoformat()
def train_prevalence(ctx: StepContext) -> float:
    """The positive share the prior baseline predicts; only the label column is read."""
    labels = pd.read_parquet(ctx.out("featurize") / "train.parquet", columns=[TARGET])
    return float(labels[TARGET].mean())


def _valid_key(metric: str) -> str:
    return "log_loss" if metric == "neg_log_loss" else metric
