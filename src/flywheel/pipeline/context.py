"""What every step gets: settings, validated params, the dataset spec, and the run's identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from flywheel.config import EvaluateParams, Params, load_params
from flywheel.data.spec import DatasetSpec, load_spec
from flywheel.settings import Settings, settings


@dataclass(frozen=True)
class StepContext:
    settings: Settings
    params: Params
    spec_path: Path
    run_tags: dict[str, str] = field(default_factory=dict)  # e.g. the Prefect flow-run id

    @cached_property
    def spec(self) -> DatasetSpec:
        return load_spec(self.spec_path)

    @property
    def is_default_dataset(self) -> bool:
        default = self.params.data.spec
        if not default.is_absolute():
            default = self.settings.root / default
        return self.spec_path.resolve() == default.resolve()

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
    def model_name(self) -> str:
        """The registered model: params' name for params' dataset, its own name for another.

        A table of another shape gets a registered model of its own, so its candidates are
        never compared with (or replace) a champion trained on different columns.
        """
        if self.is_default_dataset:
            return self.params.promote.model_name
        return f"flywheel-{self.spec.name}"

    @property
    def data_path(self) -> Path:
        path = self.spec.path
        return path if path.is_absolute() else self.settings.root / path

    def out(self, step: str) -> Path:
        return self.settings.step_dir(step)


def make_context(spec: Path | None = None, run_tags: dict[str, str] | None = None) -> StepContext:
    """Build the context at the edge (CLI, flow); `spec` overrides params' `data.spec`."""
    current = settings()
    params = load_params(current.params_path)
    spec_path = spec or params.data.spec
    if not spec_path.is_absolute():
        spec_path = current.root / spec_path
    return StepContext(current, params, spec_path, dict(run_tags or {}))
