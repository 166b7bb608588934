"""The promotion gate: a pure verdict from numbers, so every rule is testable without MLflow.

Order matters and mirrors what could go wrong in production: a model that does not load is
never compared; one below the absolute floors is never compared; only then do we ask whether
it beats the champion by more than noise, overall and on every slice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
    champion_metrics: dict[str, float] | None,
    bootstrap: dict[str, float] | None,
    slice_drops: list[dict[str, Any]],
) -> Verdict:
    """Decide whether the candidate becomes champion.

    `slice_drops` holds, per slice scored for both models, `slice` and `drop` (champion minus
    candidate on `params.metric`); `bootstrap` is the paired bootstrap of that metric.
    """
    checks: list[Check] = []

    checks.append(
        Check(
            "loads",
            load_error is None,
            load_error or "loaded in a fresh process and predicted sample rows",
        )
    )
    if load_error is not None:
        return _verdict(checks)

    for metric, bound in sorted(params.thresholds.items()):
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
    if not all(c.passed for c in checks):
        return _verdict(checks)

    if champion_metrics is None:
        checks.append(Check("champion", True, "no champion yet: first model to pass the floors"))
        return _verdict(checks)

    name = params.metric
    delta = metrics[name] - champion_metrics[name]
    checks.append(
        Check(
            "min_delta",
            delta >= params.min_delta,
            f"{name} {metrics[name]:.4f} vs champion {champion_metrics[name]:.4f}: "
            f"gain {delta:+.4f}, {params.min_delta} required",
        )
    )
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
    return _verdict(checks)


def _verdict(checks: list[Check]) -> Verdict:
    failed = [c for c in checks if not c.passed]
    if failed:
        return Verdict(False, "; ".join(f"{c.name}: {c.detail}" for c in failed), checks)
    return Verdict(True, "; ".join(c.detail for c in checks[-3:]), checks)
