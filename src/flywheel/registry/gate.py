"""The promotion gate: a pure verdict from numbers, so every rule is testable without MLflow.

Order matters and mirrors what could go wrong in production: a model that does not load is
never compared; one below the dataset's floors, or no better than always predicting the base
rate, is never compared; one that predicts another target than the champion cannot be compared;
only then do we ask whether it beats the champion by more than noise, is not worse calibrated,
and harms no slice (README, "How Flywheel decides").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from flywheel.config import BaselineParams, PromoteParams
from flywheel.data.task import Task, lower_is_better
from flywheel.evaluation.metrics import multiclass_metrics_or_none, regression_metrics


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Verdict:
    promote: bool
    reason: str
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    *,
    params: PromoteParams,
    load_error: str | None,
    metrics: dict[str, float],
    floors: dict[str, float],
    prior: dict[str, float],
    champion_metrics: dict[str, float] | None,
    task: Task,
    target_mismatch: str | None = None,
    comparison: dict[str, Any] | None = None,
) -> Verdict:
    """Decide whether the candidate becomes champion.

    `floors` come from the dataset spec; `prior` holds the test metrics of the trivial model
    that always answers what the training split knows without features (`prior_metrics`), so a
    first model on a new table must be genuinely better than knowing the base rate. Against a
    champion, `target_mismatch` (registry/compare.target_mismatch) refuses before any number is
    read, and `comparison` (registry/compare.compare) holds the paired-bootstrap numbers.
    """
    checks = [
        Check(
            "loads",
            load_error is None,
            load_error or "loaded in a fresh process and predicted sample rows",
        )
    ]
    if load_error is not None:
        return _verdict(checks)
    checks += _floor_checks(metrics, floors) + BASELINES[task.kind](params.baseline, metrics, prior)
    if not all(c.passed for c in checks):
        return _verdict(checks)
    if champion_metrics is None:
        first = "no champion yet: first model to pass the floors and beat the prior"
        return _verdict([*checks, Check("champion", True, first)])
    if target_mismatch is not None:
        return _verdict([*checks, Check("target", False, target_mismatch)])
    if comparison is None:
        raise ValueError("a champion to beat needs the paired comparison (registry/compare)")
    same = Check("target", True, "candidate and champion predict the same target and class")
    return _verdict([*checks, same, *champion_checks(params, comparison)])


def prior_metrics(y_true: np.ndarray, prior: float | np.ndarray, task: Task) -> dict[str, float]:
    """Test metrics of the model that knows only the training split's target: binary, always
    the training prevalence; multiclass, always the training class frequencies; regression,
    always the training mean. The bar any model must clear."""
    if task.kind == "binary":
        y = np.asarray(y_true, dtype="float64")
        p = min(max(float(prior), 1e-15), 1 - 1e-15)
        return {
            "roc_auc": 0.5,
            "brier": float(np.mean((y - p) ** 2)),
            "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        }
    rows = np.asarray(y_true).size
    constant = np.tile(np.asarray(prior, dtype="float64"), (rows, 1))
    if task.kind == "regression":
        return regression_metrics(y_true, constant.ravel())
    values = multiclass_metrics_or_none(np.asarray(y_true, dtype="int64"), constant)
    # every row ties: roc_auc 0.5 whether or not every class is among the test rows
    return {**{k: v for k, v in values.items() if v is not None}, "roc_auc": 0.5}


def _floor_checks(metrics: dict[str, float], floors: dict[str, float]) -> list[Check]:
    checks = []
    for metric, bound in sorted(floors.items()):
        value = metrics.get(metric)
        if value is None:
            checks.append(Check(f"threshold.{metric}", False, f"no test metric {metric!r}"))
            continue
        ceiling = lower_is_better(metric)
        ok = value <= bound if ceiling else value >= bound
        checks.append(
            Check(
                f"threshold.{metric}",
                ok,
                f"{metric} {value:.4f} {'<=' if ceiling else '>='} {bound} required",
            )
        )
    return checks


def _at_least(metric: str, value: float, bar: float, against: str) -> Check:
    return Check(
        f"baseline.{metric}",
        value >= bar,
        f"{metric} {value:.4f} vs {against}: {bar:.4f} required",
    )


def _skill(metric: str, value: float, prior: float, skill: float, whose: str) -> Check:
    """A loss at least `skill` (a share) below the prior's."""
    bar = prior * (1 - skill)
    return Check(
        f"baseline.{metric}",
        value <= bar,
        f"{metric} {value:.4f} vs {whose} {prior:.4f}: at most {bar:.4f} ({skill:.0%} below) "
        "required",
    )


def _binary_baseline(
    cfg: BaselineParams, metrics: dict[str, float], prior: dict[str, float]
) -> list[Check]:
    auc_bar = prior["roc_auc"] + cfg.min_auc_gain
    return [
        _at_least("roc_auc", metrics["roc_auc"], auc_bar, f"the prior's {prior['roc_auc']:.1f}"),
        _skill("brier", metrics["brier"], prior["brier"], cfg.min_brier_skill, "the prior's"),
    ]


def _multiclass_baseline(
    cfg: BaselineParams, metrics: dict[str, float], prior: dict[str, float]
) -> list[Check]:
    """Macro-F1 above always answering the majority class, and log loss below the class
    frequencies': a model must both pick classes and weigh them better than the base rates."""
    f1_bar = prior["macro_f1"] + cfg.min_macro_f1_gain
    majority = f"the majority class's {prior['macro_f1']:.4f}"
    return [
        _at_least("macro_f1", metrics["macro_f1"], f1_bar, majority),
        _skill(
            "log_loss",
            metrics["log_loss"],
            prior["log_loss"],
            cfg.min_log_loss_skill,
            "the class frequencies'",
        ),
    ]


def _regression_baseline(
    cfg: BaselineParams, metrics: dict[str, float], prior: dict[str, float]
) -> list[Check]:
    """RMSE below always answering the training mean (skill 1 - rmse / prior's rmse)."""
    return [
        _skill("rmse", metrics["rmse"], prior["rmse"], cfg.min_rmse_skill, "the training mean's")
    ]


BASELINES = {
    "binary": _binary_baseline,
    "multiclass": _multiclass_baseline,
    "regression": _regression_baseline,
}


def champion_checks(params: PromoteParams, comparison: dict[str, Any]) -> list[Check]:
    """Superiority, calibration non-inferiority and slices, each read off the same resamples
    at the one-sided level (1 - confidence) / 2 (2.5% at confidence 0.95)."""
    gain = comparison["gain"]
    level = f"{params.bootstrap.confidence:.0%} interval over {gain['resamples']} paired resamples"
    where = f"on {comparison['rows']} test rows"
    # lower is better: the gain is champion - candidate, how much the candidate reduced it
    reduced = " (reduction)" if lower_is_better(gain["metric"]) else ""
    return [
        Check(
            "min_delta",
            gain["ci_low"] >= params.min_delta and gain["ci_low"] > 0,
            f"{gain['metric']} gain{reduced} {gain['delta']:+.4f}, {level} "
            f"[{gain['ci_low']:+.4f}, {gain['ci_high']:+.4f}] {where}: its lower bound must "
            f"reach min_delta {params.min_delta} (and exceed 0)",
        ),
        _calibration_check(params, comparison["calibration"]),
        _slice_check(params, comparison),
    ]


def _calibration_check(params: PromoteParams, cal: dict[str, Any] | None) -> Check:
    if cal is None:
        return Check(
            "calibration", True, "regression: no calibration check (no probabilities to judge)"
        )
    return Check(
        "calibration",
        cal["ci_high"] <= params.calibration_margin,
        f"{cal['metric']} change {cal['delta']:+.4f}, interval [{cal['ci_low']:+.4f}, "
        f"{cal['ci_high']:+.4f}]: its upper bound must stay within calibration_margin "
        f"{params.calibration_margin}",
    )


def _slice_check(params: PromoteParams, comparison: dict[str, Any]) -> Check:
    slices, skipped = comparison["slices"], comparison["skipped_slices"]
    if any("rows" in s for s in [*slices, *skipped]):  # multiclass, regression: by rows
        under = f"{params.slice_min_positives + params.slice_min_negatives} rows"
    else:
        under = f"{params.slice_min_positives} positives or {params.slice_min_negatives} negatives"
    counted = f"{len(slices)} slices judged, {len(skipped)} with under {under} not"
    worst = min(slices, key=lambda s: s["p_holm"], default=None)
    if worst is None:
        return Check("slices", True, counted)
    vetoes = [s["slice"] for s in slices if s["veto"]]
    detail = (
        f"{', '.join(vetoes) or 'no slice'} falls by more than slice_tolerance "
        f"{params.slice_tolerance} beyond noise (worst {worst['slice']}: drop "
        f"{worst['drop']:+.4f}, interval [{worst['ci_low']:+.4f}, {worst['ci_high']:+.4f}], "
        f"Holm-adjusted p {worst['p_holm']:.3f}); {counted}"
    )
    return Check("slices", not vetoes, detail)


def _verdict(checks: list[Check]) -> Verdict:
    failed = [c for c in checks if not c.passed]
    if failed:
        return Verdict(False, "; ".join(f"{c.name}: {c.detail}" for c in failed), checks)
    return Verdict(True, "; ".join(c.detail for c in checks[-3:]), checks)
