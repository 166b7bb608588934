"""The promotion gate: a pure verdict from numbers, so every rule is testable without MLflow.

Order matters and mirrors what could go wrong in production: a model that does not load is
never compared; one below the dataset's floors, or no better than always predicting the base
rate, is never compared; only then do we ask whether it beats the champion by more than noise,
overall and on every slice.
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
    bootstrap: dict[str, float] | None,
    slice_drops: list[dict[str, Any]],
) -> Verdict:
    """Decide whether the candidate becomes champion.

    `floors` come from the dataset spec; `prior` holds the test metrics of the trivial model
    that always predicts the training prevalence (`prior_metrics`), so a first model on a new
    table must be genuinely better than knowing the base rate. `slice_drops` holds, per slice
    scored for both models, `slice` and `drop` (champion minus candidate on `params.metric`);
    `bootstrap` is the paired bootstrap of that metric.
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
    return _verdict(
        checks + _champion_checks(params, metrics, champion_metrics, bootstrap, slice_drops)
    )


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


def _champion_checks(
    params: PromoteParams,
    metrics: dict[str, float],
    champion_metrics: dict[str, float],
    bootstrap: dict[str, float] | None,
    slice_drops: list[dict[str, Any]],
) -> list[Check]:
    name = params.metric
    delta = metrics[name] - champion_metrics[name]
    checks = [
        Check(
            "min_delta",
            delta >= params.min_delta,
            f"{name} {metrics[name]:.4f} vs champion {champion_metrics[name]:.4f}: "
            f"gain {delta:+.4f}, {params.min_delta} required",
        )
    ]
    if bootstrap is not None:
        level = int(params.bootstrap.confidence * 100)
        checks.append(
            Check(
                "bootstrap",
                bootstrap["ci_low"] > 0,
                f"{level}% interval of the {name} gain [{bootstrap['ci_low']:+.4f}, "
                f"{bootstrap['ci_high']:+.4f}] over {int(bootstrap['resamples'])} "
                "paired resamples must lie above zero",
            )
        )
    worst = max(slice_drops, key=lambda s: s["drop"], default=None)
    if worst is not None:
        checks.append(
            Check(
                "slices",
                worst["drop"] <= params.slice_tolerance,
                f"worst slice {worst['slice']}: {name} falls {worst['drop']:+.4f} "
                f"(tolerance {params.slice_tolerance}) across {len(slice_drops)} slices",
            )
        )
    return checks


def _verdict(checks: list[Check]) -> Verdict:
    failed = [c for c in checks if not c.passed]
    if failed:
        return Verdict(False, "; ".join(f"{c.name}: {c.detail}" for c in failed), checks)
    return Verdict(True, "; ".join(c.detail for c in checks[-3:]), checks)
