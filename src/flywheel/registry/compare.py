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
from flywheel.data.task import Task
from flywheel.evaluation.bootstrap import Judged, Resampled, interval, paired_resamples
from flywheel.evaluation.slices import judged_slices, slice_verdicts
from flywheel.registry.store import TAG_PREFIX

TARGET_TAG = f"{TAG_PREFIX}target"  # JSON of target_identity, set on every registered version


def target_identity(spec: DatasetSpec) -> dict[str, Any]:
    """What a model's scores mean. Binary: P(`target` == `positive_class`) among `classes`
    (the tag every earlier version carries, unchanged). Multiclass: one probability per class
    in this order, so the classes keep their order; regression: the target's value."""
    if spec.task == "binary":
        return {
            "target": spec.target,
            "classes": sorted(spec.classes or []),
            "positive_class": spec.positive_class,
        }
    return {"target": spec.target, "task": spec.task, "classes": list(spec.classes or [])}


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
        if who.get("task", "binary") != "binary":
            return f"{who['target']} ({who['task']}, classes {who['classes']})"
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
    task: Task,
) -> dict[str, Any]:
    """Gain, calibration difference and slice drops with their intervals, on `frame`'s rows
    (both models' scores of them, `y` their labels: 0/1, class codes or numbers); `rows` says
    how many there were. The gain is on `task.metric(promote.metric)`, oriented so that
    positive means the candidate is better; a regression has no calibration to compare."""
    cfg, confidence = params.promote, params.promote.bootstrap.confidence
    groups, skipped = judged_slices(
        frame,
        y,
        params.evaluate.slices,
        cfg.slice_min_positives,
        cfg.slice_min_negatives,
        task.kind,
    )
    loss = cfg.calibration_metric if task.is_classification else None
    judged = Judged(task.kind, task.metric(cfg.metric), loss)
    resampled = paired_resamples(y, candidate, champion, judged, groups, cfg.bootstrap)
    low, high, used = interval(resampled.gain, confidence)
    return {
        "rows": int(len(y)),
        "gain": {
            "metric": judged.metric,
            "delta": resampled.observed_gain,
            "ci_low": low,
            "ci_high": high,
            "resamples": used,
        },
        "calibration": _calibration(resampled, loss, confidence),
        "slices": slice_verdicts(resampled, y, groups, cfg.slice_tolerance, confidence, task.kind),
        "skipped_slices": skipped,
    }


def _calibration(resampled: Resampled, loss: str | None, confidence: float) -> dict | None:
    """candidate - champion on the calibration loss with its interval; None without one."""
    if loss is None or resampled.loss is None or resampled.observed_loss is None:
        return None
    low, high, _ = interval(resampled.loss, confidence)
    return {"metric": loss, "delta": resampled.observed_loss, "ci_low": low, "ci_high": high}
