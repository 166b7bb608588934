"""The two drivers read one declaration of the steps; dvc.yaml must be its rendering."""

from __future__ import annotations

from pathlib import Path

import yaml

from flywheel.cli import STEP_NAMES
from flywheel.config import Params
from flywheel.pipeline.dag import STEPS, render_dvc_yaml
from flywheel.pipeline.stages import STAGES

REPO = Path(__file__).resolve().parents[2]


def test_dvc_yaml_is_rendered_from_the_declaration() -> None:
    assert (REPO / "dvc.yaml").read_text() == render_dvc_yaml(), (
        "dvc.yaml is stale: run `flywheel dvc-yaml`"
    )


def test_every_declared_step_has_a_stage_and_a_cli_name() -> None:
    names = [s.name for s in STEPS]
    assert names == list(STAGES) == list(STEP_NAMES)


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
    from flywheel.pipeline.dag import upstream

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
