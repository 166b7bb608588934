"""The dataset spec: what a table must look like, written once and read by every step.

Validation derives its expectation suite from it, featurization its column lists, and serving
its request schema, so the three can never disagree (docs/architecture.md, principles 4 and 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flywheel.data.image_spec import ImageSpec
from flywheel.errors import ConfigError

# Metrics a spec's floors may name; which apply depends on its task (data/task.py).
GateMetric = Literal[
    "roc_auc", "pr_auc", "f1", "accuracy", "log_loss", "brier",  # binary
    "macro_f1",  # multiclass (with accuracy, log_loss and roc_auc: one-vs-rest, macro)
    "rmse", "mae", "r2",  # regression
]


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["numeric", "categorical"]
    nullable: bool = False
    min: float | None = Field(default=None, description="numeric only: smallest allowed value")
    max: float | None = Field(default=None, description="numeric only: largest allowed value")
    categories: list[str] | None = Field(
        default=None, description="categorical only: the known values"
    )
    max_length: int | None = Field(
        default=None, ge=1,
        description="categorical only: longest value the service accepts (default: "
        "serve.max_string_chars)",
    )
    pii: bool = Field(
        default=False, description="personal data: hashed or dropped before the inference log"
    )

    @model_validator(mode="after")
    def _fits_kind(self) -> FeatureSpec:
        if self.kind == "categorical":
            if not self.categories:
                raise ValueError(f"feature {self.name!r}: categorical needs a list of categories")
            if self.min is not None or self.max is not None:
                raise ValueError(f"feature {self.name!r}: min/max are for numeric features")
            if self.max_length is not None and max(map(len, self.categories)) > self.max_length:
                raise ValueError(f"feature {self.name!r}: a category is longer than max_length")
        elif self.max_length is not None:
            raise ValueError(f"feature {self.name!r}: max_length is for categorical features")
        elif self.categories is not None:
            raise ValueError(f"feature {self.name!r}: categories are for categorical features")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} is above max {self.max}")
        return self


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    path: Path = Field(
        description="the table (CSV or Parquet), or an image dataset's folder, relative to the "
        "project root"
    )
    target: str
    task: Literal["binary", "multiclass", "regression"] = "binary"
    classes: list[str] | None = Field(
        default=None,
        description="classification only: binary [negative, positive]; multiclass every class",
    )
    positive_class: str | None = Field(default=None, description="binary only")
    id_columns: list[str] = Field(default_factory=list)
    features: list[FeatureSpec] = Field(min_length=1)
    floors: dict[GateMetric, float] = Field(
        default_factory=dict,
        description="what a promoted model must reach on the test split: floors, and ceilings "
        "for brier and log_loss; they belong to the dataset because what is good depends on it",
    )
    image: ImageSpec | None = Field(
        default=None,
        description="image datasets only (data/image_spec.py): `path` is a folder of class "
        "subfolders and `features` are the per-image statistics",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        self._fits_task()
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        if self.target in names or self.target in self.id_columns:
            raise ValueError(f"target {self.target!r} is also listed as a feature or id column")
        return self

    def _fits_task(self) -> None:
        classes = self.classes or []
        if self.task == "regression":
            if self.image is not None:
                raise ValueError("an image dataset is classification: its classes are folders")
            if self.classes or self.positive_class:
                raise ValueError("a regression target has no classes or positive_class")
            return
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes must be unique: {classes}")
        if self.task == "binary":
            if len(classes) != 2:
                raise ValueError(f"a binary target needs 2 classes [negative, positive]: {classes}")
            if self.positive_class not in classes:
                raise ValueError(f"positive_class {self.positive_class!r} is not in {classes}")
        else:
            if len(classes) < 3:
                raise ValueError(f"a multiclass target needs at least 3 classes: {classes}")
            if self.positive_class is not None:
                raise ValueError("positive_class is for binary targets")

    @property
    def is_image(self) -> bool:
        return self.image is not None

    @property
    def negative_class(self) -> str:
        """Binary only: the class that is not `positive_class`."""
        return next(c for c in self.classes or [] if c != self.positive_class)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[FeatureSpec]:
        return [f for f in self.features if f.kind == "categorical"]

    def feature(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)


def load_spec(path: Path) -> DatasetSpec:
    if not path.is_file():
        raise ConfigError(
            f"{path}: dataset spec not found (write one, or let `flywheel run --data FILE "
            "--target COLUMN` infer it)"
        )
    try:
        raw = yaml.safe_load(path.read_text())
        return DatasetSpec.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def save_spec(spec: DatasetSpec, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = spec.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=100))
