"""What every step gets: settings, validated params, the dataset spec, and the run's identity."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from flywheel.config import EvaluateParams, Params, load_params
from flywheel.data.spec import DatasetSpec, load_spec
from flywheel.identity import is_default_spec, registered_model
from flywheel.model_logs import ModelLogs, model_logs
from flywheel.settings import Settings, settings

# Hands promote a load checker that `flywheel run`'s fast start launched ahead; None: promote
# starts its own (a deployment run on a worker, `flywheel step promote`, `dvc repro`).
CheckerSource = Callable[[], "subprocess.Popen[str] | None"]


@dataclass(frozen=True)
class StepContext:
    settings: Settings
    params: Params
    spec_path: Path
    model_name: str  # resolved once at the edge (`flywheel.identity`)
    run_tags: dict[str, str] = field(default_factory=dict)  # e.g. the Prefect flow-run id
    started_checker: CheckerSource | None = None

    @cached_property
    def spec(self) -> DatasetSpec:
        return load_spec(self.spec_path)

    @cached_property
    def logs(self) -> ModelLogs:
        """The model's own inference log, labels and monitor folder (`flywheel.model_logs`)."""
        return model_logs(self.settings, self.model_name, self.params.promote.model_name)

    @property
    def is_default_dataset(self) -> bool:
        return is_default_spec(self.settings, self.params, self.spec_path)

    @cached_property
    def evaluate_params(self) -> EvaluateParams:
        """Params' slices name the default dataset's columns; another table keeps those it has."""
        cfg = self.params.evaluate
        if self.is_default_dataset:
            return cfg
        return cfg.model_copy(
            update={"slices": [c for c in cfg.slices if c in self.spec.feature_names]}
        )

    @property
    def data_path(self) -> Path:
        path = self.spec.path
        return path if path.is_absolute() else self.settings.root / path

    def out(self, step: str) -> Path:
        """The step's folder: `artifacts/<step>` for the default dataset (what dvc.yaml names),
        `artifacts/models/<registered model>/<step>` for any other, so a run on another table
        never touches the default pipeline's outputs (or DVC's metrics and plots of them)."""
        if self.is_default_dataset:
            return self.settings.step_dir(step)
        return self.settings.artifacts / "models" / self.model_name / step


def make_context(
    spec: Path | None = None,
    run_tags: dict[str, str] | None = None,
    model: str | None = None,
    started_checker: CheckerSource | None = None,
) -> StepContext:
    """Build the context at the edge (CLI, flow); `spec` overrides params' `data.spec`."""
    current = settings()
    params = load_params(current.params_path)
    spec_path = spec or params.data.spec
    if not spec_path.is_absolute():
        spec_path = current.root / spec_path
    name = registered_model(current, params, model, spec_path)
    return StepContext(current, params, spec_path, name, dict(run_tags or {}), started_checker)
