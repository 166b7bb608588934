"""The canary's plan and progress, kept in the registry so that no process holds it alone.

`flywheel canary start` aliases the version `canary` and writes the plan as tags of the
registered model; the controller (pipelines/canary.py) moves the step and renews a lease on each
evaluation; every service reads the share and the lease on each poll (serving/canary.py) and
routes 0% to the canary once the lease has lapsed. A controller that restarts reads the step
from here and carries on; one that never comes back leaves the champion answering everything.

Tags of the registered model (`flywheel.canary.*`): version, plan (JSON), step, share,
step_started, lease_until and ended_at (epoch seconds), state (running, rolled_back,
promoted, stopped).
The version itself gets `flywheel.canary_outcome` and, after a rollback,
`flywheel.canary_rolled_back_reason`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from flywheel.registry.store import CANARY, TAG_PREFIX, version_by_alias

PREFIX = f"{TAG_PREFIX}canary."
ROLLED_BACK_REASON = f"{TAG_PREFIX}canary_rolled_back_reason"
OUTCOME = f"{TAG_PREFIX}canary_outcome"
RUNNING, ROLLED_BACK, PROMOTED, STOPPED = "running", "rolled_back", "promoted", "stopped"


@dataclass(frozen=True)
class Plan:
    """What `canary start` decided: the shares, how long each lasts, the SLO bounds."""

    steps: list[float]
    step_seconds: float
    eval_seconds: float
    lease_seconds: float
    max_error_excess: float
    max_latency_ratio: float
    started_at: float
    forced_reason: str | None = None
    # Plans recorded before these bounds existed read with the shipped defaults.
    min_records: int = 100
    max_metric_drop: float = 0.02
    min_labelled_rows: int = 200
    require_labels: bool = False
    max_mae_increase: float = 0.05


@dataclass(frozen=True)
class Progress:
    """Where a canary stands, as the registry records it."""

    version: str
    plan: Plan
    step: int
    share: float
    step_started: float
    lease_until: float
    state: str
    ended_at: float = 0.0  # when it rolled back, was promoted or stopped

    @property
    def last_step(self) -> bool:
        return self.step >= len(self.plan.steps) - 1

    def routed_share(self, now: float) -> float:
        """The share services route: 0 unless running under a live lease."""
        return self.share if self.state == RUNNING and now < self.lease_until else 0.0


def read_progress(client: Any, name: str) -> Progress | None:
    """The recorded canary of `name`, whatever its state; None when none was ever started."""
    tags = client.get_registered_model(name).tags
    if f"{PREFIX}plan" not in tags:
        return None
    return Progress(
        version=tags[f"{PREFIX}version"],
        plan=Plan(**json.loads(tags[f"{PREFIX}plan"])),
        step=int(tags[f"{PREFIX}step"]),
        share=float(tags[f"{PREFIX}share"]),
        step_started=float(tags[f"{PREFIX}step_started"]),
        lease_until=float(tags[f"{PREFIX}lease_until"]),
        state=tags[f"{PREFIX}state"],
        ended_at=float(tags.get(f"{PREFIX}ended_at", "0")),
    )


def begin(client: Any, name: str, version: str, plan: Plan) -> Progress:
    """Record the plan at its first step, with no lease yet (0% until a controller renews it),
    then alias the version `canary`."""
    progress = Progress(version, plan, 0, plan.steps[0], plan.started_at, 0.0, RUNNING)
    write(client, name, progress)
    client.set_model_version_tag(name, version, OUTCOME, RUNNING)
    client.set_registered_model_alias(name, CANARY, version)
    return progress


def write(client: Any, name: str, progress: Progress) -> None:
    """Every tag of `progress`; the lease last, so a service never sees a new lease on an old
    share."""
    values = {
        "version": progress.version,
        "plan": json.dumps(asdict(progress.plan)),
        "step": str(progress.step),
        "share": repr(progress.share),
        "step_started": repr(progress.step_started),
        "state": progress.state,
        "ended_at": repr(progress.ended_at),
        "lease_until": repr(progress.lease_until),
    }
    for key, value in values.items():
        client.set_registered_model_tag(name, f"{PREFIX}{key}", value)


def end(client: Any, name: str, progress: Progress, state: str, reason: str) -> Progress:
    """Share 0, no lease, the alias removed, and the outcome (a rollback's reason) on the
    version's tags."""
    ended = Progress(progress.version, progress.plan, progress.step, 0.0, progress.step_started,
                     0.0, state, time.time())
    write(client, name, ended)
    client.set_model_version_tag(name, progress.version, OUTCOME, state)
    if state == ROLLED_BACK:
        client.set_model_version_tag(name, progress.version, ROLLED_BACK_REASON, reason[:5000])
    current = version_by_alias(client, name, CANARY)
    if current is not None and str(current.version) == progress.version:
        client.delete_registered_model_alias(name, CANARY)
    return ended


def renewed(progress: Progress, now: float | None = None) -> Progress:
    """The same step with its lease renewed for `plan.lease_seconds` from now."""
    now = time.time() if now is None else now
    return Progress(progress.version, progress.plan, progress.step, progress.share,
                    progress.step_started, now + progress.plan.lease_seconds, progress.state)


def advanced(progress: Progress, now: float | None = None) -> Progress:
    """The next step, started now, its lease renewed."""
    now = time.time() if now is None else now
    step = progress.step + 1
    return Progress(progress.version, progress.plan, step, progress.plan.steps[step], now,
                    now + progress.plan.lease_seconds, progress.state)


def status(progress: Progress | None, now: float | None = None) -> dict[str, Any]:
    """What `flywheel canary status` prints."""
    if progress is None:
        return {"state": "none"}
    now = time.time() if now is None else now
    return {
        "version": progress.version,
        "state": progress.state,
        "step": progress.step + 1,
        "steps": progress.plan.steps,
        "share": progress.share,
        "routed_share": progress.routed_share(now),
        "lease_left_s": round(max(0.0, progress.lease_until - now), 1),
        "step_left_s": round(max(0.0, progress.step_started + progress.plan.step_seconds - now),
                             1),
        "forced_reason": progress.plan.forced_reason,
    }
