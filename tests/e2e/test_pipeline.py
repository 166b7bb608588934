"""The whole loop on the default data, on real parts: a Prefect run, a SQLite MLflow registry,
DVC-tracked data. Tests run in file order and share one project, like a team's week:
a first champion, a better one, new data arriving and a weak model refused, each version's
data restored, broken data arriving, a rollback.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flywheel.errors import DataError, ValidationFailed
from tests.conftest import invoke_cli, make_project, project_in_use, run_cli, shrink_params

pytestmark = pytest.mark.slow
MODEL = "flywheel-churn"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Path]:
    root = make_project(tmp_path_factory.mktemp("e2e") / "project")
    # PREFECT_API_URL: for the CLI in a subprocess
    with project_in_use(root, chdir=True, PREFECT_API_URL=prefect_server):
        yield root


def run_flow(root: Path, **overrides: dict) -> list[dict]:
    from pipelines.training import training

    original = (root / "params.yaml").read_text()
    if overrides:
        shrink_params(root / "params.yaml", **overrides)
    try:
        return training()
    finally:
        (root / "params.yaml").write_text(original)


def client():  # type: ignore[no-untyped-def]
    from flywheel.registry.store import connect
    from flywheel.settings import settings

    return connect(settings())


def versions() -> list[str]:
    found = client().search_model_versions(f"name='{MODEL}'")
    return sorted((str(v.version) for v in found), key=int)


def alias(name: str) -> str | None:
    from flywheel.registry.store import version_by_alias

    found = version_by_alias(client(), MODEL, name)
    return str(found.version) if found else None


# Two epochs of a two-unit network: past the table's floors and the prior (ROC-AUC ~0.78,
# Brier ~0.17 against the prior's 0.195), well short of the full candidates (~0.84).
WEAK_MLP = {
    "train": {"candidates": ["mlp"], "mlp": {"hidden_sizes": [2], "max_epochs": 2, "lr": 0.003}},
}


PRISTINE: list[bytes] = []  # the table as the project started, kept by the first test


def test_first_run_promotes_a_first_champion(root: Path) -> None:
    PRISTINE.append((root / "data" / "wa_churn.csv").read_bytes())
    report = run_flow(root, **WEAK_MLP)
    assert [r["step"] for r in report] == ["validate", "featurize", "train", "evaluate", "promote"]
    promote = report[-1]["summary"]
    assert promote["promoted"], promote["reason"]
    assert promote["champion_after"] == "1"
    assert "no champion yet" in promote["reason"]


def test_the_run_and_its_task_runs_are_in_the_prefect_api(root: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    tag = client().get_model_version(MODEL, "1").tags["flywheel.prefect_flow_run_id"]
    with get_client(sync_client=True) as prefect:
        flow_run = prefect.read_flow_run(tag)
        tasks = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        )
    assert flow_run.state is not None and flow_run.state.is_completed()
    assert sorted(t.name for t in tasks) == sorted(
        ["validate", "featurize", "train", "evaluate", "promote"]
    )
    assert all(t.state is not None and t.state.is_completed() for t in tasks)
    _assert_graph_and_summary(flow_run.id, tasks)


def _assert_graph_and_summary(flow_run_id, tasks) -> None:  # type: ignore[no-untyped-def]
    """The UI draws dvc.yaml's DAG, and the run's page says what was promoted."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flywheel.steps.dag import upstream

    names = {t.id: t.name for t in tasks}
    for t in tasks:
        drawn = sorted(names[i.id] for i in t.task_inputs.get("wait_for", []))
        assert drawn == sorted(upstream(t.name)), t.name
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    summary = next(a for a in artifacts if a.key == "flywheel-run-summary")
    assert "version 1: **promoted to champion**" in summary.data


def test_full_run_beats_the_champion_and_carries_lineage(root: Path) -> None:
    report = run_flow(root)
    promote = report[-1]["summary"]
    assert promote["promoted"], promote["reason"]
    assert alias("champion") == "2" and alias("previous") == "1"

    version = client().get_model_version(MODEL, "2")
    tags = version.tags
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tags["flywheel.git_commit"].startswith(head)
    dvc_md5 = yaml.safe_load((root / "data.dvc").read_text())["outs"][0]["md5"]
    assert tags["flywheel.data_md5"] == dvc_md5
    assert len(tags["flywheel.prefect_flow_run_id"]) == 36
    assert tags["flywheel.gate.verdict"] == "promoted"
    met, evaluated = tags["flywheel.validation"].split(": ")[1].split(" ")[0].split("/")
    assert met == evaluated and int(met) > 50
    rule = json.loads(tags["flywheel.split_rule"])  # what a later comparison leaves out
    assert rule["method"] in ("hash", "time") and rule["seed"] is not None
    checks = {c["name"]: c for c in json.loads(tags["flywheel.gate.checks"])}
    assert {"target", "min_delta", "calibration", "slices"} <= set(checks)
    assert "paired resamples" in checks["min_delta"]["detail"]

    metrics = client().get_run(version.run_id).data.metrics
    assert metrics["test_roc_auc"] >= 0.80
    for name in ("pr_auc", "f1", "accuracy", "log_loss", "brier"):
        assert f"test_{name}" in metrics


def test_new_data_in_place_is_what_runs_and_a_weak_model_is_refused(root: Path) -> None:
    """A nightly export overwrites the table: the run uses it as it is and versions it."""
    table = root / "data" / "wa_churn.csv"
    arrived = mutate(table.read_text(), lambda f: f.iloc[:-300])
    table.write_bytes(arrived)
    before = versions()
    report = run_flow(root, **WEAK_MLP)
    promote = report[-1]["summary"]
    assert not promote["promoted"]
    assert versions() == [*before, promote["version"]]
    assert alias("champion") == "2"
    tags = client().get_model_version(MODEL, promote["version"]).tags
    assert tags["flywheel.gate.verdict"] == "rejected"
    assert tags["flywheel.gate.reason"] == promote["reason"]

    assert table.read_bytes() == arrived  # the new data was neither replaced nor lost
    versioned = yaml.safe_load((root / "data.dvc").read_text())["outs"][0]["md5"]
    assert tags["flywheel.data_md5"] == versioned  # data.dvc now names what was trained on
    assert versioned != client().get_model_version(MODEL, "2").tags["flywheel.data_md5"]
    assert tags["flywheel.data_dvc"] == (root / "data.dvc").read_text()


def test_data_checkout_restores_each_versions_table_byte_for_byte(root: Path) -> None:
    import shutil

    table = root / "data" / "wa_churn.csv"
    arrived = table.read_bytes()
    done = invoke_cli("data", "checkout", "--version", "2")
    assert done.exit_code == 0, done.output
    assert table.read_bytes() == PRISTINE[0] != arrived
    shutil.rmtree(root / ".dvc" / "cache")  # another clone: only the remote has version 3's data
    done = invoke_cli("data", "checkout", "--version", "3")
    assert done.exit_code == 0, done.output
    assert table.read_bytes() == arrived
    assert invoke_cli("data", "checkout", "--version", "2").exit_code == 0
    assert table.read_bytes() == PRISTINE[0]
    assert invoke_cli("data", "checkout", "--version", "9").exit_code == 5


def status_json(root: Path) -> dict:
    import json

    done = run_cli(root, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_status_reports_champion_and_previous_as_json(root: Path) -> None:
    info = status_json(root)
    assert info["model_name"] == MODEL
    assert info["champion"]["version"] == "2" and info["previous"]["version"] == "1"
    for key in ("version", "metrics", "git_commit", "data_md5"):
        assert key in info["champion"]
    assert info["champion"]["metrics"]["roc_auc"] >= 0.80


def test_status_of_an_unknown_model_lists_the_registered_ones(root: Path) -> None:
    done = run_cli(root, "status", "--model", "nope")
    assert done.returncode == 5 and "Traceback" not in done.stderr
    assert "'nope'" in done.stderr and MODEL in done.stderr


def test_mlflow_runs_are_told_apart_in_a_model_training_experiment(root: Path) -> None:
    import re

    experiment = client().get_experiment_by_name(MODEL)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client().search_runs([experiment.experiment_id])
    names = [r.info.run_name for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(names) == len(set(names)) >= 3
    assert all(re.fullmatch(r"wa_churn-(logreg|hgb|mlp)-\d{8}-\d{6}", n) for n in names), names
    # under each, a nested run per candidate the search fitted, with the compute it got
    nested = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert nested and {r.info.run_name for r in nested} <= {
        "candidate-logreg", "candidate-hgb", "candidate-mlp"}
    assert all(r.data.metrics["compute_rows"] > 0 for r in nested)


def test_flywheel_ui_opens_the_runs_table_with_metric_columns(root: Path) -> None:
    """Through `flywheel ui` and a headless browser; see tests/e2e/test_mlflow_ui.py."""
    from tests.e2e.test_mlflow_ui import check_ui

    experiment = client().get_experiment_by_name(MODEL)
    runs = client().search_runs([experiment.experiment_id])
    names = [r.info.run_name for r in runs if "mlflow.parentRunId" not in r.data.tags]
    check_ui(root, names, "test_roc_auc")


def mutate(text: str, fn) -> bytes:  # type: ignore[no-untyped-def]
    import io

    import pandas as pd

    frame = pd.read_csv(io.StringIO(text))
    return fn(frame).to_csv(index=False).encode()


def _set(frame, column, value):  # type: ignore[no-untyped-def]
    frame[column] = value
    return frame


PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(range(256)) * 8
DATA, INVALID = DataError.exit_code, ValidationFailed.exit_code
# case: (bad table from the good one's text, exit codes accepted, what the message names)
BAD_INPUTS = {
    "empty file": (lambda t: b"", {DATA}, "empty"),
    "not a CSV at all": (lambda t: bytes(range(256)) * 40, {DATA, INVALID}, "wa_churn.csv"),
    "an image, not a table": (lambda t: PNG, {DATA, INVALID}, "wa_churn.csv"),
    "missing column": (
        lambda t: mutate(t, lambda f: f.drop(columns="tenure")),
        {INVALID},
        "tenure",
    ),
    "renamed target": (
        lambda t: mutate(t, lambda f: f.rename(columns={"churn": "Churn"})),
        {INVALID},
        "churn",
    ),
    "text where numbers belong": (
        lambda t: mutate(t, lambda f: _set(f, "monthly_charges", "about fifty")),
        {INVALID},
        "monthly_charges",
    ),
    "out of range values": (
        lambda t: mutate(t, lambda f: _set(f, "tenure", f["tenure"] * -1 - 1)),
        {INVALID},
        "tenure",
    ),
    "flood of unseen categories": (
        lambda t: mutate(t, lambda f: _set(f, "contract", "Weekly")),
        {INVALID},
        "contract",
    ),
    "all-null column": (
        lambda t: mutate(t, lambda f: _set(f, "total_charges", None)),
        {INVALID},
        "total_charges",
    ),
    "single-class target": (
        lambda t: mutate(t, lambda f: _set(f, "churn", "No")),
        {INVALID},
        "churn",
    ),
}
IN_A_SUBPROCESS = {"text where numbers belong"}  # the others call the CLI in-process


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_data_arriving_in_place_stops_the_run_and_is_kept(root: Path, case: str) -> None:
    """Overwrite the table under data/ as an export does, then `flywheel run`, as a user would.

    One case runs the CLI in its own process; the others call the same CLI in-process, which
    spares ~15 s of interpreter and import start-up each.
    """
    import hashlib
    import json

    make, exit_codes, needle = BAD_INPUTS[case]
    table = root / "data" / "wa_churn.csv"
    pristine = table.read_bytes()
    bad = make(pristine.decode())
    before, champion = versions(), alias("champion")
    featurized = _tree(root / "artifacts" / "featurize")
    table.write_bytes(bad)
    try:
        if case in IN_A_SUBPROCESS:
            done = run_cli(root, "run")
            code, errors, output = done.returncode, done.stderr, done.stdout + done.stderr
        else:
            result = invoke_cli("run")
            code, errors, output = result.exit_code, result.stderr, result.output
        assert table.read_bytes() == bad  # left untouched for inspection
    finally:
        table.write_bytes(pristine)
    lines = [line for line in errors.splitlines() if line.strip()]
    assert code in exit_codes, errors
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], errors
    md5 = hashlib.md5(bad).hexdigest()
    assert md5 in lines[0] and "Traceback" not in output
    record = json.loads((root / "artifacts" / "validate" / "result.json").read_text())
    assert not record["success"] and record["data"]["md5"] == md5
    assert versions() == before and alias("champion") == champion
    assert _tree(root / "artifacts" / "featurize") == featurized  # nothing after validate ran


def _tree(folder: Path) -> str:
    from flywheel.registry.integrity import tree_sha256

    return tree_sha256(folder)


def test_rollback_moves_champion_to_previous_then_refuses(root: Path) -> None:
    from flywheel.errors import RegistryError
    from flywheel.registry.status import rollback
    from flywheel.settings import settings

    assert alias("champion") == "2"
    done = rollback(settings(), MODEL)
    assert done == {"model_name": MODEL, "champion": "1", "demoted": "2"}
    assert alias("champion") == "1" and alias("previous") is None
    with pytest.raises(RegistryError, match="no version with alias 'previous'"):
        rollback(settings(), MODEL)


def test_promote_rolls_forward_through_the_gate_or_by_force(root: Path) -> None:
    assert alias("champion") == "1"  # after the rollback; version 3 is the weak, refused one
    refused = run_cli(root, "promote", "--version", "3")
    assert refused.returncode == 5 and "Traceback" not in refused.stderr
    assert "not promoted" in refused.stderr and "--force" in refused.stderr
    assert alias("champion") == "1"

    result = invoke_cli("promote", "--version", "2")
    assert result.exit_code == 0, result.output
    assert alias("champion") == "2" and alias("previous") == "1"
    tags = client().get_model_version(MODEL, "2").tags
    assert tags["flywheel.manual_promote.verdict"] == "promoted"
    assert tags["flywheel.manual_promote.forced"] == "false"

    forced = ["promote", "--version", "3", "--force", "--reason", "on-call choice"]
    result = invoke_cli(*forced)
    assert result.exit_code == 0, result.output
    assert alias("champion") == "3" and alias("previous") == "2"
    tags = client().get_model_version(MODEL, "3").tags
    assert tags["flywheel.manual_promote.forced"] == "true"
    assert "on-call choice" in tags["flywheel.manual_promote.reason"]


def test_run_on_another_table_infers_its_spec_and_registers_its_own_model(root: Path) -> None:
    import hashlib

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 1500
    usage = rng.gamma(2.0, 10.0, n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    risk = -0.08 * usage + (plan == "basic") * 1.5 + rng.normal(0, 1, n)
    table = pd.DataFrame(
        {
            "account": [f"A{i:06d}" for i in range(n)],
            "usage_hours": usage,
            "plan": plan,
            "age": rng.integers(18, 80, n),
            "cancelled": np.where(risk > np.quantile(risk, 0.7), "yes", "no"),
        }
    )
    path = root / "accounts.parquet"
    table.to_parquet(path)
    champion = alias("champion")
    default_outputs = {
        p: p.read_bytes() for p in (root / "artifacts").glob("*/*") if p.is_file()
    }

    result = invoke_cli("run", "--data", str(path), "--target", "cancelled")
    assert result.exit_code == 0, result.output
    own_folder = root / "artifacts" / "models" / "flywheel-accounts"
    assert (own_folder / "evaluate" / "metrics.json").is_file()
    assert {p: p.read_bytes() for p in default_outputs} == default_outputs  # churn's untouched

    spec = yaml.safe_load((root / "specs" / "accounts.yaml").read_text())
    assert spec["target"] == "cancelled" and spec["positive_class"] == "yes"
    assert spec["id_columns"] == ["account"]
    from flywheel.registry.store import version_by_alias

    own = version_by_alias(client(), "flywheel-accounts", "champion")
    assert own is not None and str(own.version) == "1"
    assert own.tags["flywheel.data_md5"] == hashlib.md5(path.read_bytes()).hexdigest()
    assert alias("champion") == champion  # the churn model was neither compared nor replaced


def test_a_three_class_table_gets_a_multiclass_spec(root: Path) -> None:
    import pandas as pd

    path = root / "three.csv"
    pd.DataFrame({"x": range(600), "label": ["a", "b", "c"] * 200}).to_csv(path, index=False)
    result = invoke_cli("infer-spec", str(path), "--target", "label")
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load((root / "specs" / "three.yaml").read_text())
    assert (spec["task"], spec["classes"]) == ("multiclass", ["a", "b", "c"])


def test_moved_project_keeps_its_champion_and_writes_artifacts_inside(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Move the project, delete nothing else: the champion loads and new artifacts land inside."""
    import mlflow
    import pandas as pd

    from flywheel.registry.store import ensure_experiment
    from flywheel.settings import settings

    moved = root.parent / "moved"
    root.rename(moved)
    monkeypatch.setenv("FLYWHEEL_ROOT", str(moved))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # set by mlflow in this process
    monkeypatch.chdir(moved)
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(MODEL)
    assert experiment.artifact_location.startswith(moved.as_uri())

    champion = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    rows = pd.read_csv(moved / "data" / "wa_churn.csv").head(3)  # the step folders may hold
    assert len(champion.predict(rows.drop(columns="churn"))) == 3  # another table's splits

    experiment_id = ensure_experiment(mlflow_client, MODEL, settings())
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_dict({"moved": True}, "moved.json")
    assert run.info.artifact_uri.startswith(moved.as_uri())
    assert not root.exists()
