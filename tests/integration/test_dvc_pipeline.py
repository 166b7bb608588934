"""`dvc repro` drives the same steps on a fresh clone: real DVC in a temporary git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, make_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh clone (no data/, no DVC cache) with the code DVC hashes, after `make install`."""
    root = make_project(tmp_path_factory.mktemp("dvc") / "project")
    shutil.rmtree(root / "data", ignore_errors=True)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "code"], cwd=root, check=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        mp.setenv("FLYWHEEL_ROOT", str(root))
        mp.setenv("DVC_SITE_CACHE_DIR", str(root.parent / "dvc-site"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("FLYWHEEL_TRACKING_URI", raising=False)
        # what `make install` does after installing: DVC cannot repro a missing data source
        subprocess.run(["flywheel", "pull-data"], cwd=root, check=True, timeout=300)
        yield root


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_repro_on_a_fresh_clone_runs_every_stage(clone: Path) -> None:
    output = dvc(clone, "repro")
    assert ran(output) == ["validate", "featurize", "train", "evaluate", "promote"]
    decision = json.loads((clone / "artifacts/promote/decision.json").read_text())
    assert decision["promoted"] and decision["version"] == "1"
    metrics = json.loads(dvc(clone, "metrics", "show", "--json"))
    assert metrics  # dvc reads metrics.json as metrics
    assert "roc_auc" in json.dumps(metrics)


def test_second_repro_does_nothing(clone: Path) -> None:
    output = dvc(clone, "repro")
    assert ran(output) == []
    assert "up to date" in output.lower()


def test_changing_one_param_reruns_only_what_depends_on_it(clone: Path) -> None:
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["promote"]["min_delta"] = 0.01
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(dvc(clone, "repro")) == ["promote"]


def test_exp_run_with_a_set_param(clone: Path) -> None:
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-qm", "first run"], cwd=clone, check=True)
    output = dvc(clone, "exp", "run", "-S", "evaluate.threshold=0.4")
    assert ran(output) == ["evaluate", "promote"]
    assert yaml.safe_load((clone / "params.yaml").read_text())["evaluate"]["threshold"] == 0.4
    shown = json.loads(dvc(clone, "exp", "show", "--json"))
    assert "0.4" in json.dumps(shown)
    # An experiment registers and is judged, but never moves the champion by itself.
    decision = json.loads((clone / "artifacts/promote/decision.json").read_text())
    assert not decision["promoted"]
    assert decision["champion_after"] == decision["champion_before"] == "1"
    dvc(clone, "metrics", "diff")  # the committed first run is the baseline


def test_plots_render_offline(clone: Path) -> None:
    dvc(clone, "plots", "show", "-o", "plots-out")
    page = (clone / "plots-out" / "index.html").read_text()
    assert "vega" in page and "cdn.jsdelivr" not in page and "<script src=" not in page
    # the four top-level views only, no default-template duplicate per plot file
    assert page.count("vegaEmbed('#") == 4
