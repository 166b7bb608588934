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

from flywheel.config import PromoteParams

CEILING_METRICS = {"log_loss", "brier"}  # lower is better: thresholds are upper bounds


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
    target_mismatch: str | None = None,
    comparison: dict[str, Any] | None = None,
) -> Verdict:
    """Decide whether the candidate becomes champion.

    `floors` come from the dataset spec; `prior` holds the test metrics of the trivial model
    that always predicts the training prevalence (`prior_metrics`), so a first model on a new
    table must be genuinely better than knowing the base rate. Against a champion,
    `target_mismatch` (registry/compare.target_mismatch) refuses before any number is read, and
    `comparison` (registry/compare.compare) holds the paired-bootstrap numbers.
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
    checks += _floor_checks(metrics, floors) + _baseline_checks(params, metrics, prior)
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


def prior_metrics(y_true: np.ndarray, prevalence: float) -> dict[str, float]:
    """Test metrics of always answering the training prevalence: the bar any model must clear."""
    y = np.asarray(y_true, dtype="float64")
    p = min(max(prevalence, 1e-15), 1 - 1e-15)
    return {
        "roc_auc": 0.5,
        "brier": float(np.mean((y - p) ** 2)),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
    }


def _floor_checks(metrics: dict[str, float], floors: dict[str, float]) -> list[Check]:
    checks = []
    for metric, bound in sorted(floors.items()):
        value = metrics.get(metric)
        if value is None:
            checks.append(Check(f"threshold.{metric}", False, f"no test metric {metric!r}"))
            continue
        ceiling = metric in CEILING_METRICS
        ok = value <= bound if ceiling else value >= bound
        checks.append(
            Check(
                f"threshold.{metric}",
                ok,
                f"{metric} {value:.4f} {'<=' if ceiling else '>='} {bound} required",
            )
        )
    return checks


def _baseline_checks(
    params: PromoteParams, metrics: dict[str, float], prior: dict[str, float]
) -> list[Check]:
    cfg = params.baseline
    auc_bar = prior["roc_auc"] + cfg.min_auc_gain
    brier_bar = prior["brier"] * (1 - cfg.min_brier_skill)
    auc, brier = metrics["roc_auc"], metrics["brier"]
    return [
        Check(
            "baseline.roc_auc",
            auc >= auc_bar,
            f"roc_auc {auc:.4f} vs the prior's {prior['roc_auc']:.1f}: {auc_bar:.4f} required",
        ),
        Check(
            "baseline.brier",
            brier <= brier_bar,
            f"brier {brier:.4f} vs the prior's {prior['brier']:.4f}: at most {brier_bar:.4f} "
            f"({cfg.min_brier_skill:.0%} below) required",
        ),
    ]


def champion_checks(params: PromoteParams, comparison: dict[str, Any]) -> list[Check]:
    """Superiority, calibration non-inferiority and slices, each read off the same resamples
    at the one-sided level (1 - confidence) / 2 (2.5% at confidence 0.95)."""
    gain, cal = comparison["gain"], comparison["calibration"]
    level = f"{params.bootstrap.confidence:.0%} interval over {gain['resamples']} paired resamples"
    where = f"on {comparison['rows']} test rows"
    return [
        Check(
            "min_delta",
            gain["ci_low"] >= params.min_delta and gain["ci_low"] > 0,
            f"{gain['metric']} gain {gain['delta']:+.4f}, {level} [{gain['ci_low']:+.4f}, "
            f"{gain['ci_high']:+.4f}] {where}: its lower bound must reach min_delta "
            f"{params.min_delta} (and exceed 0)",
        ),
        Check(
            "calibration",
            cal["ci_high"] <= params.calibration_margin,
            f"{cal['metric']} change {cal['delta']:+.4f}, interval [{cal['ci_low']:+.4f}, "
            f"{cal['ci_high']:+.4f}]: its upper bound must stay within calibration_margin "
            f"{params.calibration_margin}",
        ),
        _slice_check(params, comparison),
    ]


def _slice_check(params: PromoteParams, comparison: dict[str, Any]) -> Check:
    slices, skipped = comparison["slices"], comparison["skipped_slices"]
    counted = (
        f"{len(slices)} slices judged, {len(skipped)} with under "
        f"{params.slice_min_positives} positives or {params.slice_min_negatives} negatives not"
    )
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
