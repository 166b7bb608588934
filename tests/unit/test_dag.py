"""The two drivers read one declaration of the steps; dvc.yaml must be its rendering."""

from __future__ import annotations

from pathlib import Path

import yaml

from flywheel.config import Params
from flywheel.steps.dag import STEP_NAMES, STEPS, render_dvc_yaml

REPO = Path(__file__).resolve().parents[2]


def test_dvc_yaml_is_rendered_from_the_declaration() -> None:
    assert (REPO / "dvc.yaml").read_text() == render_dvc_yaml(), (
        "dvc.yaml is stale: run `flywheel dvc-yaml`"
    )


def test_each_step_carries_its_function_from_a_file_named_after_it() -> None:
    """One hop from a dvc.yaml stage or a flow task to the code: flywheel/steps/<name>.py."""
    assert [s.name for s in STEPS] == list(STEP_NAMES)
    for step in STEPS:
        assert step.run.__module__ == f"flywheel.steps.{step.name}", step.name
        assert f"src/flywheel/steps/{step.name}.py" in step.deps, step.name


def test_dvc_stages_call_the_declared_step() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert {name: stage["cmd"] for name, stage in stages.items()} == {
        name: f"flywheel step {name}" for name in STEP_NAMES
    }


def test_declared_params_exist_in_params_yaml() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    Params.model_validate(params)
    for step in STEPS:
        for key in step.params:
            node = params
            for part in key.split("."):
                assert part in node, f"step {step.name}: params key {key!r} not in params.yaml"
                node = node[part]


def test_each_step_depends_on_an_earlier_steps_outputs() -> None:
    produced: set[str] = set()
    for step in STEPS:
        upstream = [d for d in step.deps if d.startswith("artifacts/")]
        for dep in upstream:
            assert any(
                dep == out or dep.startswith(out + "/") or out.startswith(dep + "/")
                for out in produced
            ), f"{step.name} needs {dep} before it is produced"
        produced |= {*step.outs, *step.metrics, *step.plots, *step.uncached}


def test_flow_edges_are_dvc_yaml_edges() -> None:
    """The Prefect graph draws these edges (wait_for); DVC derives the same from deps/outs."""
    from flywheel.steps.dag import upstream

    assert {s.name: set(upstream(s.name)) for s in STEPS} == {
        "validate": set(),
        "featurize": {"validate"},
        "train": {"featurize"},
        "evaluate": {"featurize", "train"},
        "promote": {"validate", "featurize", "train", "evaluate"},  # train.parquet: prior, profile
    }


def test_no_stage_level_plots_so_dvc_draws_each_view_once() -> None:
    rendered = yaml.safe_load(render_dvc_yaml())
    assert all("plots" not in stage for stage in rendered["stages"].values())
    assert len(rendered["plots"]) == 4
