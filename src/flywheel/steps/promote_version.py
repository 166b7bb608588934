"""`flywheel promote --version N`: make a chosen version champion, through the same gate.

For rolling forward after a rollback, or choosing an older version on purpose. The chosen
version and the current champion are scored on the project's current test split and judged
by `gate.judge` with params' promote rules, exactly as the pipeline judges a candidate.
`--force --reason TEXT` skips the gate; either way the version's tags record who moved it.
Both versions are loaded only after their signatures and files are checked (integrity.py): a
version a registry writer slipped in is refused, forced or not. The new verdict is signed
before `champion` moves.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from flywheel.data.task import Task, task_of
from flywheel.errors import RegistryError
from flywheel.registry import store
from flywheel.registry.compare import compare, recorded_identity, target_identity, target_mismatch
from flywheel.registry.gate import Check, Verdict, judge
from flywheel.steps.champion import unseen_by
from flywheel.steps.context import StepContext
from flywheel.steps.inputs import TARGET, judging_params, read_split, train_prior

log = logging.getLogger(__name__)
TAG = f"{store.TAG_PREFIX}manual_promote"


def promote_version(
    ctx: StepContext, version: str, force_reason: str | None = None
) -> dict[str, Any]:
    """Move `champion` of `ctx.model_name` to `version` if the gate passes (or is forced)."""
    client = store.connect(ctx.settings)
    verdict, before = judge_version(ctx, client, version, force_reason, TAG)
    if not verdict.promote:
        raise RegistryError(
            f"version {version} of {ctx.model_name!r} not promoted: {verdict.reason}; "
            "pass --force --reason TEXT to promote it anyway"
        )
    move_champion(client, ctx.model_name, version, before, verdict.reason)
    return {
        "model_name": ctx.model_name,
        "champion": version,
        "previous": before,
        "forced": force_reason is not None,
        "reason": verdict.reason,
    }


def judge_version(
    ctx: StepContext, client: Any, version: str, force_reason: str | None, tag: str
) -> tuple[Verdict, str | None]:
    """The gate's verdict on `version` against the champion (or a forced one), recorded under
    `tag` and signed; and the champion's version. Shared by `promote --version` and
    `canary start`, so a canary meets exactly the gate a promotion does."""
    from flywheel.registry.integrity import verify_version
    from flywheel.registry.signing import ANY_VERDICT, FORCED, PROMOTED, REJECTED, load_keyring
    from flywheel.registry.vouch import sign_verdict

    model_name = ctx.model_name
    keyring = load_keyring(ctx.settings.signing_key)
    chosen = _require_version(client, model_name, version)
    verify_version(chosen, accept=ANY_VERDICT)  # signed by us, files as registered
    current = store.version_by_alias(client, model_name, store.CHAMPION)
    before = str(current.version) if current else None
    if before == version:
        raise RegistryError(f"version {version} of {model_name!r} is already champion")
    if force_reason is not None:
        verdict = Verdict(True, f"forced by hand: {force_reason}")
    else:
        verdict = _gate(ctx, chosen, current)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for key, value in {
        f"{tag}.at": stamp,
        f"{tag}.verdict": "promoted" if verdict.promote else "rejected",
        f"{tag}.forced": str(force_reason is not None).lower(),
        f"{tag}.reason": verdict.reason,
        f"{tag}.champion_before": before or "none",
    }.items():
        client.set_model_version_tag(model_name, version, key, value[:5000])
    forced = FORCED if force_reason is not None else PROMOTED
    sign_verdict(client, keyring, chosen, forced if verdict.promote else REJECTED)
    return verdict, before


def move_champion(
    client: Any, model_name: str, version: str, before: str | None, reason: str
) -> None:
    """`champion` to `version`, the one it leaves to `previous` (`flywheel rollback`)."""
    if before is not None:
        client.set_registered_model_alias(model_name, store.PREVIOUS, before)
    client.set_registered_model_alias(model_name, store.CHAMPION, version)
    log.info("version %s of %s is champion (was %s): %s", version, model_name, before, reason)


def _require_version(client: Any, model_name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise RegistryError(
            f"{model_name!r} has no version {version!r} (see `flywheel status` or the MLflow UI)"
        ) from exc


def _gate(ctx: StepContext, version: Any, champion: Any | None) -> Verdict:
    """Score both versions on the current test split and judge as the promote step does."""
    from flywheel.evaluation.metrics import task_metrics
    from flywheel.registry.gate import prior_metrics
    from flywheel.registry.signing import ANY_VERDICT, SERVABLE

    test = _rows_neither_saw(ctx, [version, champion])
    y, spec = test[TARGET].to_numpy(), ctx.spec
    task = task_of(spec)
    bars: dict[str, Any] = {
        "params": ctx.params.promote,
        "floors": {str(k): v for k, v in spec.floors.items()},
        "prior": prior_metrics(y, train_prior(ctx, task), task),
        "task": task,
    }
    mismatch = _target_mismatch(ctx, [version, champion])
    if mismatch is not None:  # refused before anything is loaded or scored
        return Verdict(False, mismatch, [Check("target", False, mismatch)])
    try:
        proba = _score(task, version, test, ANY_VERDICT)
    except Exception as exc:  # whatever stops it from scoring, the gate's first check fails
        return judge(
            **bars, load_error=f"{type(exc).__name__}: {exc}", metrics={}, champion_metrics=None
        )
    scores = {"candidate": proba}
    if champion is not None:
        scores["champion"] = _score(task, champion, test, SERVABLE)
    threshold = ctx.evaluate_params.threshold
    metrics = {n: task_metrics(task.kind, y, p, threshold) for n, p in scores.items()}
    comparison = None
    if champion is not None:
        params = judging_params(ctx)
        comparison = compare(params, test, y, scores["candidate"], scores["champion"], task)
    log.info("gate numbers: %s", json.dumps({"metrics": metrics, "comparison": comparison}))
    return judge(
        **bars,
        load_error=None,
        metrics=metrics["candidate"],
        champion_metrics=metrics.get("champion"),
        comparison=comparison,
    )


def _rows_neither_saw(ctx: StepContext, versions: list[Any]) -> pd.DataFrame:
    """The current test rows that none of `versions` trained on (their recorded split rules)."""
    test = read_split(ctx, "test")
    keep = np.ones(len(test), dtype=bool)
    for version in filter(None, versions):
        keep &= unseen_by(ctx, version, test)
    if not keep.any():
        numbers = ", ".join(str(v.version) for v in filter(None, versions))
        raise RegistryError(
            f"every current test row was in the training data of version(s) {numbers}: "
            "nothing fair to judge on"
        )
    log.info(
        "judging on %d of %d test rows that neither version trained on", int(keep.sum()), len(test)
    )
    return test[keep].reset_index(drop=True)


def _target_mismatch(ctx: StepContext, versions: list[Any]) -> str | None:
    """Both versions are scored against this project's labels: each must predict its target."""
    here = target_identity(ctx.spec)
    for version in filter(None, versions):
        line = target_mismatch(here, recorded_identity(version))
        if line is not None:
            return f"target: version {version.version} differs from this project's spec: {line}"
    return None


def _score(task: Task, version: Any, test: pd.DataFrame, accept: frozenset[str]) -> np.ndarray:
    """Scores of a version loaded from its checked files (signature, then digest), in the
    shape the task judges (evaluation/scores.py)."""
    from flywheel.evaluation.scores import answer_scores
    from flywheel.registry.integrity import load_verified

    answer = load_verified(version, accept=accept).predict(test.drop(columns=TARGET))
    return answer_scores(task, answer)
