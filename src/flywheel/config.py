"""Typed view of params.yaml, the single source of tunables (docs/architecture.md, principle 2).

Each section of params.yaml is validated into its own model; a step reads only its section.
Defaults live in params.yaml, not here: every field is required so that one file says it all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flywheel.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    spec: Path = Field(description="dataset spec (YAML), relative to the project root")


class ValidateParams(_Section):
    min_rows: int = Field(ge=1, description="fewest rows a usable table may have")
    category_mostly: float = Field(
        gt=0, le=1, description="share of values that must be known categories"
    )
    min_class_fraction: float = Field(
        gt=0, lt=0.5, description="smallest share the rarest target class may have"
    )
    # A file up to this size is read whole (fastest); a larger one in batches, so a table
    # larger than memory is validated holding one batch (data/io.py table_batches).
    whole_table_max_mb: float = Field(default=512, gt=0, description="larger files: batches")
    batch_rows: int = Field(default=500_000, ge=1000, description="rows per batch when batched")


class FeaturizeParams(_Section):
    test_size: float = Field(gt=0, lt=1)
    valid_size: float = Field(gt=0, lt=1)
    seed: int
    split_by: str | None = Field(
        default=None,
        description="a time column: latest rows test, the ones before valid (features/split.py); "
        "none: a stable hash of each row's id columns or content",
    )
    max_categories: int = Field(
        ge=2, description="one-hot columns per categorical at most; rarer levels share one"
    )


class LogRegParams(_Section):
    C: float = Field(gt=0)
    max_iter: int = Field(ge=1)


class HGBParams(_Section):
    learning_rate: float = Field(gt=0)
    max_iter: int = Field(ge=1)
    max_leaf_nodes: int = Field(ge=2)
    l2_regularization: float = Field(ge=0)
    n_iter_no_change: int = Field(
        ge=1, description="stop after this many rounds without a better valid-split loss"
    )


def _check_batch_splits(batch_size: int, nproc: int, what: str) -> None:
    """Under DDP each rank steps on batch_size / nproc of them: the split must be exact."""
    if batch_size % nproc:
        raise ValueError(f"batch_size {batch_size} must be a multiple of nproc {nproc} "
                         f"(each process steps on batch_size / nproc {what})")


class MLPParams(_Section):
    hidden_sizes: list[int] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    device: Literal["auto", "cpu", "cuda"]
    nproc: int = Field(default=1, ge=1, description="processes for DDP (one per GPU); 1: no DDP")
    ddp_timeout_s: float = Field(
        default=300, gt=0, description="longest wait on another rank before failing"
    )
    cuda_graph: bool = Field(
        default=True, description="on one GPU in bf16, replay each step as a captured CUDA graph"
    )

    @model_validator(mode="after")
    def _batch_splits_over_ranks(self) -> MLPParams:
        _check_batch_splits(self.batch_size, self.nproc, "rows")
        return self


class CNNParams(_Section):
    """The image classifier (training/cnn.py); sized to train the MNIST example on 2 CPU cores
    in well under two minutes."""

    channels: list[int] = Field(default=[16, 32, 64], min_length=1,
                                description="per conv block")
    pool: int = Field(default=1, ge=1, description="side of the pool before the head: 1 sees "
                      "what is in the image wherever it is, 7 also where")
    standardize: bool = Field(default=True, description="each image to zero mean and unit "
                              "spread per channel before the first conv")
    hidden: int = Field(default=64, ge=1, description="the penultimate layer: the embedding")
    dropout: float = Field(default=0.1, ge=0, lt=1)
    lr: float = Field(default=0.003, gt=0)
    batch_size: int = Field(default=32, ge=1)
    max_epochs: int = Field(default=12, ge=1)
    min_steps: int = Field(default=400, ge=0, description="a small training split trains "
                           "more epochs than max_epochs, up to this many batches in all")
    patience: int = Field(default=3, ge=1, description="epochs without a better valid loss "
                          "(stretched in the same ratio when min_steps adds epochs)")
    shift: int = Field(default=2, ge=0, description="augmentation: random shift, pixels")
    rotation: float = Field(default=10.0, ge=0, le=180, description="augmentation: degrees")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    nproc: int = Field(default=1, ge=1, description="processes for DDP (one per GPU); 1: no DDP")
    ddp_timeout_s: float = Field(
        default=300, gt=0, description="longest wait on another rank before failing"
    )
    cuda_graph: bool = Field(
        default=True, description="on one GPU in bf16, replay each step as a captured CUDA graph"
    )

    @model_validator(mode="after")
    def _batch_splits_over_ranks(self) -> CNNParams:
        _check_batch_splits(self.batch_size, self.nproc, "images")
        return self


ImageCandidate = Literal["cnn", "pixel_logreg"]  # pixel_logreg: logreg on 14x14 pixels
IMAGE_CANDIDATES: tuple[ImageCandidate, ...] = ("cnn", "pixel_logreg")
class HalvingParams(_Section):
    """Successive halving (training/halving.py): the rungs' rows and who goes on."""

    min_rows: int = Field(
        default=50_000, ge=100, description="rows of the first rung; a smaller table: one rung"
    )
    factor: int = Field(default=3, ge=2, description="rows grow by this per rung; the best "
                        "1/factor go on")
    margin: float = Field(default=0.005, ge=0, description="also go on: within this of the "
                          "rung's best selection score (the metric's units)")
    max_cost_ratio: float | None = Field(
        default=1.5, gt=0, description="one that goes on only for the margin: its next fit "
        "forecast at most this times the leader's; null: no cost limit")


class SearchParams(_Section):
    """Optional hyperparameter search with Optuna (training/tuning.py); off: the main job stays
    fast."""

    enabled: bool = False
    candidate: Literal["logreg", "hgb", "mlp"] | None = Field(
        default=None, description="whose hyperparameters; none: the halving winner's"
    )
    n_trials: int = Field(default=20, ge=1)
    timeout_s: float | None = Field(default=300, gt=0, description="no trial starts after this")


BUILTIN_CANDIDATES = ("logreg", "hgb", "mlp")
# Bring your own model (training/custom.py): `package.module:factory`
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class TrainParams(_Section):
    candidates: list[str] = Field(
        min_length=1, description="built-in names, or package.module:factory import paths"
    )
    custom: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="each import-path candidate's params, by its path"
    )
    seed: int
    # A metric that does not judge the spec's task falls back to the task's primary one
    # (data/task.py): the default `roc_auc` selects a regression by rmse.
    selection_metric: Literal[
        "roc_auc", "pr_auc", "neg_log_loss", "macro_f1", "accuracy", "rmse", "mae", "r2"
    ]
    logreg: LogRegParams
    hgb: HGBParams
    mlp: MLPParams
    # An image dataset's candidates (its features are images, not columns).
    image_candidates: list[ImageCandidate] = Field(
        default=list(IMAGE_CANDIDATES), min_length=1
    )
    cnn: CNNParams = Field(default_factory=CNNParams)
    workers: int | None = Field(
        default=None, ge=1, description="candidate fits at a time; none: every core"
    )
    budget_s: float | None = Field(
        default=None, gt=0, description="no rung starts that is forecast to end past this"
    )
    max_candidate_s: float | None = Field(
        default=None, gt=0, description="a candidate stops before a fit forecast past this"
    )
    halving: HalvingParams = Field(default_factory=HalvingParams)
    search: SearchParams = Field(default_factory=SearchParams)
    # Where candidate fits run: local processes, or Dask tasks (training/dask_backend.py) on a
    # local cluster, or on the one FLYWHEEL_DASK_ADDRESS names (that setting alone selects Dask).
    executor: Literal["local", "dask"] = Field(default="local")

    @field_validator("candidates")
    @classmethod
    def _known_candidates(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in BUILTIN_CANDIDATES and not IMPORT_PATH.match(name):
                raise ValueError(
                    f"{name!r} is neither a built-in candidate "
                    f"({', '.join(BUILTIN_CANDIDATES)}) nor an import path package.module:factory"
                )
        return names


class EvaluateParams(_Section):
    threshold: float = Field(gt=0, lt=1, description="probability above which we predict positive")
    slices: list[str] = Field(description="categorical columns to report metrics per value of")
    min_slice_rows: int = Field(ge=1)
    calibration_bins: int = Field(ge=2)


class BootstrapParams(_Section):
    resamples: int = Field(ge=100)
    seed: int
    confidence: float = Field(gt=0.5, lt=1)


class BaselineParams(_Section):
    """How far a model must beat the prior (always predicting the training prevalence)."""

    min_auc_gain: float = Field(ge=0, lt=0.5, description="ROC-AUC above the prior's 0.5")
    min_brier_skill: float = Field(
        ge=0, lt=1, description="1 - brier / prior's brier: share of the prior's error removed"
    )
    # Multiclass and regression (registry/gate.py BASELINES); defaults for older params files.
    min_macro_f1_gain: float = Field(
        default=0.1, ge=0, lt=1, description="macro-F1 above always answering the majority class"
    )
    min_log_loss_skill: float = Field(
        default=0.05, ge=0, lt=1, description="1 - log_loss / the class frequencies' log loss"
    )
    min_rmse_skill: float = Field(
        default=0.05, ge=0, lt=1, description="1 - rmse / the training mean's rmse"
    )


class PromoteParams(_Section):
    model_name: str = Field(min_length=1)
    # Judged per task as Task.metric(metric): one that does not judge the task falls back to
    # the task's primary metric (macro_f1 multiclass, rmse regression).
    metric: Literal["roc_auc", "pr_auc", "macro_f1", "accuracy", "log_loss", "rmse", "mae", "r2"]
    baseline: BaselineParams
    min_delta: float = Field(
        ge=0, description="superiority: the gain interval's lower bound must reach this (and 0)"
    )
    calibration_metric: Literal["brier", "log_loss"] = Field(
        default="brier", description="loss the candidate must not be worse on than the champion"
    )
    calibration_margin: float = Field(
        default=0.02,
        ge=0,
        description="non-inferiority: the upper bound of candidate - champion loss at most this",
    )
    slice_tolerance: float = Field(
        ge=0, description="a slice vetoes when its metric drop exceeds this beyond noise (Holm)"
    )
    slice_min_positives: int = Field(default=20, ge=1, description="fewer: slice not judged")
    slice_min_negatives: int = Field(default=20, ge=1, description="fewer: slice not judged")
    bootstrap: BootstrapParams
    experiments: Literal["register_only", "promote"] = Field(
        description="under `dvc exp run`: register and judge only, or also move the champion"
    )


class ServeParams(_Section):
    host: str
    port: int = Field(ge=1, le=65535)
    workers: int = Field(ge=1)
    max_batch_size: int = Field(ge=1)
    reload_interval_s: float = Field(gt=0)
    max_body_bytes: int = Field(ge=1024)
    inference_log_sample_rate: float = Field(ge=0, le=1)
    inference_log_roll_rows: int = Field(ge=1)
    inference_log_roll_seconds: float = Field(gt=0)
    inference_log_queue_size: int = Field(ge=1)
    max_json_depth: int = Field(ge=2)
    request_body_timeout_s: float = Field(gt=0)
    inference_log_max_age_days: float = Field(gt=0)
    inference_log_max_bytes: int = Field(ge=1024)
    max_string_chars: int = Field(
        default=256,
        ge=1,
        description="longest category value "
        "accepted when the spec gives no max_length (422 past it)",
    )
    header_timeout_s: float = Field(
        default=10,
        gt=0,
        description="a request's headers must "
        "arrive within this; the connection is closed otherwise",
    )
    feedback_max_files: int = Field(
        default=64, ge=2, description="label files /feedback keeps before compacting them into one"
    )
    schema_change: Literal["swap", "refuse"] = Field(
        default="swap",
        description="a new champion whose request fields differ: swapped in "
        "with its schema, or refused (the old one keeps serving)",
    )
    shadow_sample_rate: float = Field(default=1.0, ge=0, le=1, description="share of requests "
                                      "the `challenger` alias also scores, off the response path")
    shadow_queue_size: int = Field(default=1000, ge=1, description="requests waiting for the "
                                   "challenger; past it they are dropped and counted")


class MonitorParams(_Section):
    window_minutes: float = Field(gt=0, description="drift over rows logged this recently")
    min_rows: int = Field(ge=1, description="fewer rows in the window: not enough traffic")
    psi_bins: int = Field(ge=2, description="quantile bins per numeric feature and the score")
    min_level_rows: int = Field(
        ge=1, description="a categorical level needs this many reference rows for its own bin"
    )
    max_levels: int = Field(ge=1, description="at most this many categorical levels kept")
    alpha: float = Field(
        gt=0, lt=1, description="family-wise false-alarm rate per window (Holm over features)"
    )
    min_psi: float = Field(ge=0, description="a drifted feature also needs PSI above this")
    resamples: int = Field(
        ge=100, description="null draws at least (raised to reach the strictest Holm level)"
    )
    persistence: int = Field(ge=1, description="alarm after this many consecutive drifted windows")
    seed: int
    report_ttl_s: float = Field(gt=0, description="exporter drops series of older reports")
    live_window_minutes: float = Field(gt=0, description="live metrics over recent predictions")
    min_labelled_rows: int = Field(ge=1, description="fewer labels: no decay verdict")
    retrain_cooldown_minutes: float = Field(ge=0)
    schedule: str = Field(min_length=1, description="cron schedule of the monitoring flow")


class PredictParams(_Section):
    chunk_rows: int = Field(ge=1, description="rows read, checked and scored at a time")


class CanaryParams(_Section):
    """`flywheel canary`: the steps of live traffic a version gets, and the SLOs that stop it."""

    steps: list[float] = Field(min_length=2,
                               description="shares of traffic, in order; the last must be 1")
    step_seconds: float = Field(gt=0, description="each step lasts this long")
    eval_seconds: float = Field(gt=0, description="the controller judges this often")
    lease_seconds: float = Field(gt=0, description="services route 0% to the "
                                 "canary when the controller has not renewed it for this long")
    route_by: str = Field(min_length=1, description="request_id, or an "
                          "entity column: the same value always meets the same model")
    max_error_excess: float = Field(ge=0, le=1, description="canary error ratio "
                                    "minus the champion's, at most")
    max_latency_ratio: float = Field(gt=0, description="canary p95 model-call time "
                                     "over the champion's, at most (judged on the share of "
                                     "canary calls past this x the champion's p95)")
    min_records: int = Field(100, ge=1, description="canary records a step must have seen "
                             "before it may pass")
    max_metric_drop: float = Field(0.02, ge=0, le=1, description="canary live accuracy below "
                                   "the champion's on labelled requests, at most")
    max_mae_increase: float = Field(0.05, ge=0, description="a regression canary's live mean "
                                    "absolute error over the champion's, at most, relative")
    require_labels: bool = Field(False, description="the step before the last holds until "
                                 "both roles have monitor.min_labelled_rows labelled requests")
    prometheus_url: str = Field(min_length=1, description="where the canary rules are evaluated")

    @field_validator("steps")
    @classmethod
    def _rising_to_one(cls, steps: list[float]) -> list[float]:
        if any(not 0 < s <= 1 for s in steps) or steps != sorted(set(steps)) or steps[-1] != 1:
            raise ValueError("expected rising shares in (0, 1] ending with 1.0")
        return steps


class Params(_Section):
    model_config = ConfigDict(extra="ignore", frozen=True)

    data: DataParams
    validate_: ValidateParams = Field(alias="validate")
    featurize: FeaturizeParams
    train: TrainParams
    evaluate: EvaluateParams
    promote: PromoteParams
    serve: ServeParams
    monitor: MonitorParams
    predict: PredictParams
    canary: CanaryParams | None = None  # older params files have none: `flywheel canary` says so


def load_params(path: Path) -> Params:
    """Read and validate params.yaml; a bad field names itself in the error."""
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (expected the project's params.yaml)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
