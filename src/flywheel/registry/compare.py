"""Candidate against champion on the same rows: the numbers the gate's champion checks read.

Two models are comparable only when they predict the same thing: the same target column, the
same classes and the same positive class (a flipped positive class inverts the champion's
scores, and any candidate would win). That is checked first, from each version's recorded
identity. Then one stream of paired resamples gives the ranking gain, the calibration loss
difference and every slice's drop (evaluation/bootstrap.py, evaluation/slices.py).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from flywheel.config import Params
from flywheel.data.spec import DatasetSpec
from flywheel.evaluation.bootstrap import interval, paired_resamples
from flywheel.evaluation.slices import judged_slices, slice_verdicts
from flywheel.registry.store import TAG_PREFIX

TARGET_TAG = f"{TAG_PREFIX}target"  # JSON of target_identity, set on every registered version


def target_identity(spec: DatasetSpec) -> dict[str, Any]:
    """What a model's probability means: P(`target` == `positive_class`) among `classes`."""
    return {
        "target": spec.target,
        "classes": sorted(spec.classes or []),
        "positive_class": spec.positive_class,
    }


def recorded_identity(version: Any) -> dict[str, Any]:
    """A registered version's target identity: its tag, or (versions registered before the tag
    existed) the dataset spec inside the model, loaded from its verified files."""
    raw = (getattr(version, "tags", None) or {}).get(TARGET_TAG)
    if raw:
        return dict(json.loads(raw))
    from flywheel.registry.integrity import load_verified

    model = load_verified(version, suppress_warnings=True).unwrap_python_model().model
    return target_identity(model.spec)


def target_mismatch(candidate: dict[str, Any], champion: dict[str, Any]) -> str | None:
    """None when both predict the same thing, else the one line that says how they differ."""
    if candidate == champion:
        return None

    def said(who: dict[str, Any]) -> str:
        return f"{who['target']}={who['positive_class']!r} of {who['classes']}"

    return (
        f"the champion predicts {said(champion)}, the candidate {said(candidate)}: their "
        "scores are not comparable (register the new target under another promote.model_name)"
    )


def compare(
    params: Params,
    frame: pd.DataFrame,
    y: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
) -> dict[str, Any]:
    """Gain, calibration difference and slice drops with their intervals, on `frame`'s rows
    (both models' scores of them, `y` their 0/1 labels); `rows` says how many there were."""
    cfg, confidence = params.promote, params.promote.bootstrap.confidence
    groups, skipped = judged_slices(
        frame, y, params.evaluate.slices, cfg.slice_min_positives, cfg.slice_min_negatives
    )
    resampled = paired_resamples(
        y, candidate, champion, cfg.metric, cfg.calibration_metric, groups, cfg.bootstrap
    )
    low, high, used = interval(resampled.gain, confidence)
    loss_low, loss_high, _ = interval(resampled.loss, confidence)
    return {
        "rows": int(len(y)),
        "gain": {
            "metric": cfg.metric,
            "delta": resampled.observed_gain,
            "ci_low": low,
            "ci_high": high,
            "resamples": used,
        },
        "calibration": {
            "metric": cfg.calibration_metric,
            "delta": resampled.observed_loss,
            "ci_low": loss_low,
            "ci_high": loss_high,
        },
        "slices": slice_verdicts(resampled, y, groups, cfg.slice_tolerance, confidence),
        "skipped_slices": skipped,
    }
