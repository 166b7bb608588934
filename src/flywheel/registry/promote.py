"""Log the run, register the candidate as one model, judge it, and move the aliases.

Registration comes before the verdict on purpose: a rejected version stays in the registry with
its reason, so nothing is lost, while `champion` only ever points at a version that passed.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.config import Params
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import task_of
from flywheel.errors import RegistryError
from flywheel.evaluation.scores import read_scores
from flywheel.model import Model
from flywheel.pause import pause_point
from flywheel.registry import store
from flywheel.registry.candidate_runs import log_candidate_runs, log_trial_runs
from flywheel.registry.compare import (
    TARGET_TAG,
    compare,
    recorded_identity,
    target_identity,
    target_mismatch,
)
from flywheel.registry.duplicates import (
    FILE_DIGEST_TAG,
    identical_version,
    not_registered,
)
from flywheel.registry.gate import Check, Verdict, judge, prior_metrics
from flywheel.registry.integrity import DIGEST_TAG, digest_of, file_sha256
from flywheel.registry.lineage import origin_tags
from flywheel.registry.lock import promotion_lock
from flywheel.registry.signing import PROMOTED, REGISTERED, REJECTED, Keyring, ensure_keyring
from flywheel.registry.vouch import sign
from flywheel.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromoteInputs:
    """Files the earlier steps wrote; promote reads, it never recomputes."""

    model: Model
    model_file: Path
    metrics: dict[str, float]
    # y_true, the candidate's and the champion's (when there is one) scores + features; the
    # score columns as evaluation/scores.py names them
    predictions: pd.DataFrame
    slices: list[dict[str, Any]]  # per-slice metrics of both models, from evaluate
    champion: dict[str, Any] | None  # {"version", "metrics"} as scored by evaluate
    artifact_dirs: dict[str, Path]  # name in the MLflow run -> folder to log
    sample: pd.DataFrame  # raw rows for the signature, input example and the load check
    lineage: dict[str, str]
    model_name: str
    # What the prior baseline answers (registry/gate.prior_metrics): the training split's
    # positive share (binary), class frequencies (multiclass) or mean (regression)
    prior: float | np.ndarray
    # Logged into the run as JSON artifacts (path -> content): the reference profile drift is
    # measured against, which the monitoring layer builds and reads.
    logged_dicts: dict[str, dict[str, Any]] = field(default_factory=dict)


def promote(
    settings: Settings,
    params: Params,
    spec: DatasetSpec,
    inputs: PromoteInputs,
    scratch: Path,
    checker: subprocess.Popen[str] | None = None,
) -> dict[str, Any]:
    """Log, register, load-check and judge the candidate; move the aliases if it passes.

    `checker` is a load checker started ahead (it imports its libraries while the earlier steps
    run); without one, one starts now and imports while we log and register.
    """
    from flywheel.registry.loadcheck import start_checker

    if checker is None or checker.poll() is not None:
        checker = start_checker()
    try:
        return _log_register_judge(settings, params, spec, inputs, scratch, checker)
    finally:
        if checker.poll() is None:
            checker.kill()
            checker.communicate()


def _log_register_judge(
    settings: Settings,
    params: Params,
    spec: DatasetSpec,
    inputs: PromoteInputs,
    scratch: Path,
    checker: subprocess.Popen[str],
) -> dict[str, Any]:
    import mlflow

    from flywheel.registry.loadcheck import finish_check

    client = store.connect(settings)
    keyring = ensure_keyring(settings.signing_key)  # the load check below verifies with it
    current = _champion_as_scored(client, inputs)
    before = str(current.version) if current else None
    file_digest = file_sha256(inputs.model_file)
    twin = identical_version(client, inputs.model_name, file_digest)
    # Only the champion's twin is skipped: a twin that never got its alias (a run killed between
    # registering and aliasing, a rival still judging it) is registered and judged again, or a
    # rerun could never finish what the crash interrupted.
    if twin is not None and str(twin.version) == before:
        log.info("identical to v%s of %s, not registered", twin.version, inputs.model_name)
        return not_registered(inputs.model_name, twin, before)

    experiment_id = store.ensure_experiment(client, inputs.model_name, settings)
    tags = _lineage_tags(inputs)
    tags[FILE_DIGEST_TAG] = file_digest
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name(spec.name, inputs.model.candidate), tags=tags
    ) as run:
        _log_run(params, inputs)
        version, sha256 = _register_signed(client, keyring, spec, inputs, tags)

        rows = scratch / "sample_rows.parquet"
        inputs.sample.to_parquet(rows)
        load_error = finish_check(
            checker, store.model_uri(inputs.model_name, version), rows, settings.mlflow_uri
        )
        verdict, numbers = _judge(
            params, spec, inputs, load_error, recorded_identity(current) if current else None
        )
        verdict = _experiment_holds(verdict, params, settings)
        record = _Signed(keyring, version, sha256)
        verdict, now = _settle(client, inputs.model_name, record, before, verdict, numbers)
        log.info("version %s of %s: %s (%s)", version, inputs.model_name,
                 "promoted" if verdict.promote else "not promoted", verdict.reason)
        return {
            "model_name": inputs.model_name,
            "version": version,
            "run_id": run.info.run_id,
            "promoted": verdict.promote,
            "reason": verdict.reason,
            "champion_before": before,
            "champion_after": version if verdict.promote else now,
            "checks": [c.__dict__ for c in verdict.checks],
            "numbers": numbers,
        }


def _champion_as_scored(client: Any, inputs: PromoteInputs) -> Any | None:
    """The champion now, which must be the one evaluate scored the candidate against."""
    current = store.version_by_alias(client, inputs.model_name, store.CHAMPION)
    before = str(current.version) if current else None
    scored = inputs.champion["version"] if inputs.champion else None
    if before != scored:
        raise RegistryError(
            f"champion of {inputs.model_name!r} moved from {scored} to {before} since evaluate "
            "ran; run the pipeline again"
        )
    return current


def _register_signed(
    client: Any, keyring: Keyring, spec: DatasetSpec, inputs: PromoteInputs, tags: dict[str, str]
) -> tuple[str, str]:
    """Log the pyfunc, register it and sign it `registered`; returns (version, SHA-256).

    The digest of the files as stored goes next to the lineage, signed with the key kept
    outside the registry: every later load checks both before unpickling.
    """
    import mlflow

    from flywheel.registry.pyfunc import log_pyfunc

    info = log_pyfunc(inputs.model, inputs.model_file, inputs.sample)
    sha256 = digest_of(info.model_uri)
    signed = {**tags, DIGEST_TAG: sha256, TARGET_TAG: json.dumps(target_identity(spec))}
    version = str(mlflow.register_model(info.model_uri, inputs.model_name, tags=signed).version)
    sign(client, keyring, inputs.model_name, version, sha256, REGISTERED)
    return version, sha256


def _log_run(params: Params, inputs: PromoteInputs) -> None:
    """Params, test and valid metrics, the step folders and the logged dicts, in the run."""
    import mlflow

    mlflow.log_params(_flat_params(params))
    mlflow.log_metrics(
        {f"test_{k}": v for k, v in inputs.metrics.items()}
        | {f"valid_{k}": v for k, v in inputs.model.valid_metrics.items()}
    )
    for name, folder in inputs.artifact_dirs.items():
        mlflow.log_artifacts(str(folder), artifact_path=name)
    for path, content in inputs.logged_dicts.items():
        mlflow.log_dict(content, path)
    if "training" in inputs.artifact_dirs:
        log_candidate_runs(inputs.artifact_dirs["training"] / "candidates.json")
        log_trial_runs(inputs.artifact_dirs["training"] / "search.json")


@dataclass(frozen=True)
class _Signed:
    """The version just registered, its digest, and the key that signs its verdict."""

    keyring: Keyring
    version: str
    sha256: str


def _settle(
    client: Any,
    name: str,
    record: _Signed,
    before: str | None,
    verdict: Verdict,
    numbers: dict[str, Any],
) -> tuple[Verdict, str | None]:
    """Record and sign the verdict and move the aliases under the registry-wide promotion lock.

    The champion is read again inside the lock: a pass judged against a champion that another
    run replaced meanwhile is refused (compare-and-set). Returns the verdict and the champion now.
    The signature goes on before `champion` moves, so the service never sees it unsigned.
    """
    import mlflow

    version = record.version
    with promotion_lock(client, name):
        verdict, now = _still_against(client, name, before, verdict)
        mlflow.log_dict({"verdict": verdict.to_dict(), "numbers": numbers}, "gate.json")
        _record(client, name, version, verdict, numbers)
        signed = PROMOTED if verdict.promote else REJECTED
        sign(client, record.keyring, name, version, record.sha256, signed)
        pause_point("promote:registered")
        if verdict.promote:
            if before is not None:
                client.set_registered_model_alias(name, store.PREVIOUS, before)
            client.set_registered_model_alias(name, store.CHAMPION, version)
    return verdict, now


def _experiment_holds(verdict: Verdict, params: Params, settings: Settings) -> Verdict:
    """Under `dvc exp run` a passing version stays registered only, unless params say promote.

    An experiment is a question, not a release: it must not move what is being served.
    """
    name = settings.dvc_experiment
    if not verdict.promote or name is None or params.promote.experiments == "promote":
        return verdict
    return Verdict(
        False,
        f"passed the gate, but DVC experiment {name} only registers (promote.experiments: "
        f"register_only); promote it with `flywheel promote --version N`. {verdict.reason}",
        verdict.checks,
    )


def _lineage_tags(inputs: PromoteInputs) -> dict[str, str]:
    """The lineage as registry tags, with a bring-your-own model's code origin (a model
    pickled before `origin` existed has none)."""
    lineage = {**inputs.lineage, **origin_tags(getattr(inputs.model, "origin", {}))}
    return {store.TAG_PREFIX + k: v for k, v in lineage.items()}


def run_name(dataset: str, candidate: str) -> str:
    """Unique and readable in MLflow's runs table: what was trained, on what, and when (UTC)."""
    from datetime import UTC, datetime

    return f"{dataset}-{candidate}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def _judge(
    params: Params,
    spec: DatasetSpec,
    inputs: PromoteInputs,
    load_error: str | None,
    champion_target: dict[str, Any] | None = None,
) -> tuple[Verdict, dict[str, Any]]:
    """The gate's numbers from evaluate's predictions; `champion_target` is the champion's
    recorded target identity, compared with the candidate's before any number is read."""
    preds, task = inputs.predictions, task_of(spec)
    y = preds["y_true"].to_numpy()
    prior = prior_metrics(y, inputs.prior, task)
    numbers: dict[str, Any] = {"candidate": inputs.metrics, "prior": prior}
    champion_metrics = inputs.champion["metrics"] if inputs.champion else None
    mismatch = None
    comparison = None
    if inputs.champion is not None and load_error is None:
        numbers["champion"] = champion_metrics
        mismatch = target_mismatch(target_identity(spec), champion_target or target_identity(spec))
        if mismatch is None:
            candidate, champion = (read_scores(preds, n, task) for n in ("candidate", "champion"))
            comparison = compare(params, preds, y, candidate, champion, task)
            numbers["comparison"] = comparison
    verdict = judge(
        params=params.promote,
        load_error=load_error,
        metrics=inputs.metrics,
        floors={str(metric): bound for metric, bound in spec.floors.items()},
        prior=prior,
        champion_metrics=champion_metrics,
        task=task,
        target_mismatch=mismatch,
        comparison=comparison,
    )
    return verdict, numbers


def _still_against(
    client: Any, name: str, before: str | None, verdict: Verdict
) -> tuple[Verdict, str | None]:
    """Compare-and-set: a pass counts only against the champion it was judged against.

    Called under the promotion lock; if another run moved `champion` meanwhile, this version
    is refused with the reason, and neither alias moves. Returns the champion as it is now.
    """
    current = store.version_by_alias(client, name, store.CHAMPION)
    now = str(current.version) if current else None
    if not verdict.promote or now == before:
        return verdict, now
    reason = (
        f"champion moved from {before} to {now} while this version was judged against {before} "
        f"(another run promoted first); not promoted, run the pipeline again to judge it "
        f"against {now}"
    )
    check = Check(name="champion_unchanged", passed=False, detail=reason)
    return Verdict(promote=False, reason=reason, checks=[*verdict.checks, check]), now


def _record(
    client: Any, name: str, version: str, verdict: Verdict, numbers: dict[str, Any]
) -> None:
    """Every number behind the verdict goes on the version, where `status` and people look."""
    tag = store.TAG_PREFIX
    values = {
        f"{tag}gate.verdict": "promoted" if verdict.promote else "rejected",
        f"{tag}gate.reason": verdict.reason,
        f"{tag}gate.checks": json.dumps([c.__dict__ for c in verdict.checks]),
        f"{tag}gate.numbers": json.dumps(numbers, default=_jsonable),
    }
    for key, value in values.items():
        client.set_model_version_tag(name, version, key, value[:5000])
    client.update_model_version(name, version, description=verdict.reason[:5000])


def _flat_params(params: Params) -> dict[str, str]:
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = str(value)

    walk("", params.model_dump(mode="json", by_alias=True))
    return flat


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
