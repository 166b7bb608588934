"""The one declaration of the pipeline: each step's function, deps, params, outs and plots.

`dvc.yaml` is rendered from it (`flywheel dvc-yaml`), `flywheel step NAME` and the Prefect
flow run the function it names, so the two drivers cannot drift apart (docs/architecture.md,
principle 1); a test fails when dvc.yaml is stale. From a stage of dvc.yaml or a task of the
flow, the step's code is one hop away: `flywheel/steps/<name>.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from flywheel.steps import evaluate, featurize, promote, train, validate
from flywheel.steps.context import StepContext

DEFAULT_ARTIFACTS = "artifacts"  # rewritten to FLYWHEEL_ARTIFACTS_DIR by render_dvc_yaml
EVALUATE = f"{DEFAULT_ARTIFACTS}/evaluate"


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[StepContext], dict[str, Any]]  # load inputs, call the library, save outputs
    deps: tuple[str, ...]
    params: tuple[str, ...]
    outs: tuple[str, ...]
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    uncached: tuple[str, ...] = field(default=())  # small outputs git should hold, not the cache
    # Whether what the step made outside the workspace still exists (promote: the registered
    # version in the configured registry); DVC's lock cannot see it.
    still_current: Callable[[StepContext], bool] | None = None


# The default dataset's spec alone (DVC reads `data.spec` from params.yaml), not all of
# specs/: `flywheel run --data` writes another table's spec there, which must not make the
# default's stages look changed (`dvc status`, `dvc repro`).
SPEC_DEP = "${data.spec}"

STEPS: tuple[Step, ...] = (
    Step(
        "validate",
        validate.run,
        deps=("data", SPEC_DEP, "src/flywheel/validation", "src/flywheel/steps/validate.py"),
        params=("data", "validate"),
        outs=("artifacts/validate",),
    ),
    Step(
        "featurize",
        featurize.run,
        deps=(
            "data",
            SPEC_DEP,
            "artifacts/validate/result.json",
            "src/flywheel/features",
            "src/flywheel/steps/featurize.py",
        ),
        params=("data", "featurize"),
        outs=("artifacts/featurize",),
    ),
    Step(
        "train",
        train.run,
        deps=(
            "artifacts/featurize",
            "src/flywheel/training",
            "src/flywheel/model.py",
            "src/flywheel/steps/train.py",
        ),
        params=("train",),
        outs=("artifacts/train",),
    ),
    Step(
        "evaluate",
        evaluate.run,
        deps=(
            "artifacts/featurize",
            "artifacts/train",
            "src/flywheel/evaluation",
            "src/flywheel/steps/evaluate.py",
        ),
        params=("evaluate", "promote.model_name"),
        outs=(
            f"{EVALUATE}/predictions.parquet",
            f"{EVALUATE}/champion.json",
            f"{EVALUATE}/report.html",
            f"{EVALUATE}/slices.json",
            *(f"{EVALUATE}/plots/{name}.png" for name in ("roc", "pr", "calibration", "confusion")),
        ),
        metrics=(f"{EVALUATE}/metrics.json",),
        plots=(
            f"{EVALUATE}/plots/roc.json",
            f"{EVALUATE}/plots/pr.json",
            f"{EVALUATE}/plots/calibration.json",
            f"{EVALUATE}/plots/confusion.csv",
        ),
    ),
    Step(
        "promote",
        promote.run,
        deps=(
            SPEC_DEP,
            "artifacts/validate/result.json",
            "artifacts/featurize/train.parquet",
            "artifacts/featurize/test.parquet",
            "artifacts/train",
            f"{EVALUATE}/metrics.json",
            f"{EVALUATE}/predictions.parquet",
            f"{EVALUATE}/champion.json",
            f"{EVALUATE}/slices.json",
            "src/flywheel/registry",
            "src/flywheel/steps/promote.py",
        ),
        params=("promote", "evaluate"),
        outs=(),
        uncached=("artifacts/promote/decision.json",),
        still_current=promote.registered_here,
    ),
)

# How `dvc plots show` draws each plot file. `by_model` (.dvc/plots/by_model.json) draws the
# candidate and the champion as two lines; DVC's `linear` would join them into one.
PLOT_VIEWS: dict[str, dict[str, Any]] = {
    "ROC curve": {
        "template": "by_model",
        "x": "fpr",
        "y": {f"{EVALUATE}/plots/roc.json": "tpr"},
        "x_label": "false positive rate",
        "y_label": "true positive rate",
    },
    "Precision-recall curve": {
        "template": "by_model",
        "x": "recall",
        "y": {f"{EVALUATE}/plots/pr.json": "precision"},
    },
    "Calibration": {
        "template": "by_model",
        "x": "mean_predicted",
        "y": {f"{EVALUATE}/plots/calibration.json": "fraction_positive"},
        "x_label": "mean predicted probability",
        "y_label": "fraction positive",
    },
    "Confusion matrix": {
        "template": "confusion",
        "x": "predicted",
        "y": {f"{EVALUATE}/plots/confusion.csv": "actual"},
    },
}


STEP_NAMES = tuple(s.name for s in STEPS)


def step(name: str) -> Step:
    for candidate in STEPS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def upstream(name: str) -> tuple[str, ...]:
    """The steps whose outputs `name` reads: the edges both drivers draw (DVC and the flow)."""
    reads = step(name).deps

    def overlaps(a: str, b: str) -> bool:
        return a == b or a.startswith(f"{b}/") or b.startswith(f"{a}/")

    return tuple(
        s.name
        for s in STEPS
        if s.name != name
        and any(overlaps(d, o) for d in reads for o in (*s.outs, *s.uncached, *s.metrics))
    )


def render_dvc_yaml(artifacts: str = DEFAULT_ARTIFACTS) -> str:
    """dvc.yaml text; `artifacts` (FLYWHEEL_ARTIFACTS_DIR, relative to the root) moves outputs."""

    def at(path: str) -> str:
        if path == DEFAULT_ARTIFACTS or path.startswith(f"{DEFAULT_ARTIFACTS}/"):
            return artifacts + path[len(DEFAULT_ARTIFACTS) :]
        return path

    stages: dict[str, Any] = {}
    for s in STEPS:
        stage: dict[str, Any] = {
            "cmd": f"flywheel step {s.name}",
            "deps": [at(p) for p in s.deps],
            "params": list(s.params),
        }
        # Plot files are plain outs: the top-level views below draw them. Declared again as
        # stage `plots:`, `dvc plots show` would add a second, default-template chart of each.
        kept = (*s.plots, *s.uncached)
        outs: list[Any] = [*map(at, s.outs), *({at(p): {"cache": False}} for p in kept)]
        if outs:
            stage["outs"] = outs
        if s.metrics:
            stage["metrics"] = [{at(path): {"cache": False}} for path in s.metrics]
        stages[s.name] = stage
    views = [
        {name: {**view, "y": {at(k): v for k, v in view["y"].items()}}}
        for name, view in PLOT_VIEWS.items()
    ]
    header = "# Generated from src/flywheel/steps/dag.py by `flywheel dvc-yaml`; do not edit.\n"
    body = yaml.safe_dump(
        {"stages": stages, "plots": views},
        sort_keys=False,
        width=100,
    )
    return header + body
