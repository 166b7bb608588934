"""Per-process state shared by the BentoML service instance and the ASGI gate in front of it.

BentoML builds middleware from the service class before any instance exists, so both sides
hold this object: the service fills it when a worker starts, the gate reads it per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flywheel.serving.registry_watch import ModelHolder


@dataclass
class ServingState:
    model_name: str
    max_body_bytes: int
    max_batch_size: int
    sample_rate: float
    reload_interval_s: float
    max_json_depth: int = 32
    body_timeout_s: float = 10.0
    holder: ModelHolder = field(default_factory=ModelHolder)
    metrics: Any = None  # ServingMetrics, created in the worker
    inference_log: Any = None  # InferenceLog, started in the worker
    shadow: Any = None  # serving/shadow.Shadow: the challenger, when shadowing is on
    canary: Any = None  # serving/canary.CanaryRoute: routes a share to the `canary` alias

    def count_invalid(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.invalid_requests.labels(reason=reason).inc()

    def no_model_message(self) -> str:
        if self.holder.refused:  # there is a champion: it is the one that cannot serve
            return (
                f"no model to serve: {self.holder.refused}. Check that version's files and "
                "re-sign it (`flywheel sign --version N`), or move the champion (`flywheel "
                "rollback`, `flywheel promote --version N`); this service loads it when the "
                "alias moves."
            )
        return (
            f"no model to serve: the registry has no '{self.model_name}@champion' yet. Run the "
            "pipeline (`flywheel run`) to train and promote one; this service picks it up "
            f"within {self.reload_interval_s:g} s."
        )
