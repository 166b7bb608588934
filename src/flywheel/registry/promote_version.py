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

from flywheel.errors import DataError, RegistryError
from flywheel.pipeline.context import StepContext
from flywheel.registry import store
from flywheel.registry.gate import Verdict, judge

log = logging.getLogger(__name__)
TARGET = "__target__"  # the 0/1 label column featurize writes into the split files
TAG = f"{store.TAG_PREFIX}manual_promote"


def promote_version(
    ctx: StepContext, model_name: str, version: str, force_reason: str | None = None
) -> dict[str, Any]:
    """Move `champion` to `version` if the gate passes (or `force_reason` is given)."""
    from flywheel.registry.integrity import verify_version
    from flywheel.registry.signing import ANY_VERDICT, FORCED, PROMOTED, REJECTED, load_keyring
    from flywheel.registry.vouch import sign_verdict

    keyring = load_keyring(ctx.settings.signing_key)
    client = store.connect(ctx.settings)
    chosen = _require_version(client, model_name, version)
    verify_version(chosen, accept=ANY_VERDICT)  # signed by us, files as registered
    current = store.version_by_alias(client, model_name, store.CHAMPION)
    before = str(current.version) if current else None
    if before == version:
        raise RegistryError(f"version {version} of {model_name!r} is already champion")
    if force_reason is not None:
        verdict = Verdict(True, f"forced by hand: {force_reason}")
    else:
        verdict = _gate(ctx, model_name, chosen, current)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for key, value in {
        f"{TAG}.at": stamp,
        f"{TAG}.verdict": "promoted" if verdict.promote else "rejected",
        f"{TAG}.forced": str(force_reason is not None).lower(),
        f"{TAG}.reason": verdict.reason,
        f"{TAG}.champion_before": before or "none",
    }.items():
        client.set_model_version_tag(model_name, version, key, value[:5000])
    forced = FORCED if force_reason is not None else PROMOTED
    sign_verdict(client, keyring, chosen, forced if verdict.promote else REJECTED)
    if not verdict.promote:
        raise RegistryError(
            f"version {version} of {model_name!r} not promoted: {verdict.reason}; "
            "pass --force --reason TEXT to promote it anyway"
        )
    if before is not None:
        client.set_registered_model_alias(model_name, store.PREVIOUS, before)
    client.set_registered_model_alias(model_name, store.CHAMPION, version)
    log.info(
        "version %s of %s is champion (was %s): %s", version, model_name, before, verdict.reason
    )
    return {
        "model_name": model_name,
        "champion": version,
        "previous": before,
        "forced": force_reason is not None,
        "reason": verdict.reason,
    }


def _require_version(client: Any, model_name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise RegistryError(
            f"{model_name!r} has no version {version!r} (see `flywheel status` or the MLflow UI)"
        ) from exc


def _gate(ctx: StepContext, model_name: str, version: Any, champion: Any | None) -> Verdict:
    """Score both versions on the current test split and judge as the promote step does."""
    from flywheel.evaluation.bootstrap import paired_bootstrap
    from flywheel.evaluation.metrics import classification_metrics
    from flywheel.evaluation.slices import slice_metrics
    from flywheel.pipeline.stages import train_prevalence
    from flywheel.registry.gate import prior_metrics
    from flywheel.registry.promote import _slice_drops
    from flywheel.registry.signing import ANY_VERDICT, SERVABLE

    test = _test_split(ctx)
    y = test[TARGET].to_numpy()
    cfg, rules = ctx.evaluate_params, ctx.params.promote
    bars: dict[str, dict[str, float]] = {
        "floors": {str(k): v for k, v in ctx.spec.floors.items()},
        "prior": prior_metrics(y, train_prevalence(ctx)),
    }
    try:
        proba = _score(version, test, ANY_VERDICT)
    except Exception as exc:  # whatever stops it from scoring, the gate's first check fails
        return judge(
            params=rules,
            load_error=f"{type(exc).__name__}: {exc}",
            metrics={},
            **bars,
            champion_metrics=None,
            bootstrap=None,
            slice_drops=[],
        )
    scores = {"candidate": proba}
    if champion is not None:
        scores["champion"] = _score(champion, test, SERVABLE)
    metrics = {n: classification_metrics(y, p, cfg.threshold) for n, p in scores.items()}
    slices = [
        {"model": n, **r}
        for n, p in scores.items()
        for r in slice_metrics(test, y, p, cfg.slices, cfg.threshold, cfg.min_slice_rows)
    ]
    bootstrap = None
    if champion is not None:
        bootstrap = paired_bootstrap(
            y, scores["candidate"], scores["champion"], rules.metric, rules.bootstrap
        )
    log.info("gate numbers: %s", json.dumps(metrics))
    return judge(
        params=rules,
        load_error=None,
        metrics=metrics["candidate"],
        **bars,
        champion_metrics=metrics.get("champion"),
        bootstrap=bootstrap,
        slice_drops=_slice_drops(slices, rules.metric),
    )


def _test_split(ctx: StepContext) -> pd.DataFrame:
    path = ctx.out("featurize") / "test.parquet"
    if not path.is_file():
        raise DataError(
            f"{path}: no test split to judge the version on; run `flywheel step featurize` "
            "(or `dvc repro featurize`) first"
        )
    return pd.read_parquet(path)


def _score(version: Any, test: pd.DataFrame, accept: frozenset[str]) -> np.ndarray:
    """Probabilities of a version loaded from its checked files (signature, then digest)."""
    from flywheel.registry.integrity import load_verified

    answer = load_verified(version, accept=accept).predict(test.drop(columns=TARGET))
    return answer["probability"].to_numpy(dtype="float64")
