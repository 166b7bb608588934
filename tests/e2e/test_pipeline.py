"""The whole loop on the default data, on real parts: a Prefect run, a SQLite MLflow registry,
DVC-tracked data. Tests run in file order and share one project, like a team's week:
a first champion, a better one, a weak one that is refused, broken data, a rollback.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flywheel.errors import DataError, FlywheelError, ValidationFailed
from tests.conftest import make_project, shrink_params

pytestmark = pytest.mark.slow
MODEL = "flywheel-churn"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Iterator[Path]:
    root = make_project(tmp_path_factory.mktemp("e2e") / "project")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLYWHEEL_ROOT", str(root))
        mp.setenv("DVC_SITE_CACHE_DIR", str(root.parent / "dvc-site"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("FLYWHEEL_TRACKING_URI", raising=False)
        mp.chdir(root)
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


def test_first_run_promotes_a_first_champion(root: Path) -> None:
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
    assert "bootstrap" in tags["flywheel.gate.checks"]

    metrics = client().get_run(version.run_id).data.metrics
    assert metrics["test_roc_auc"] >= 0.80
    for name in ("pr_auc", "f1", "accuracy", "log_loss", "brier"):
        assert f"test_{name}" in metrics


def test_weak_model_is_registered_but_not_promoted(root: Path) -> None:
    before = versions()
    report = run_flow(root, **WEAK_MLP)
    promote = report[-1]["summary"]
    assert not promote["promoted"]
    assert versions() == [*before, promote["version"]]
    assert alias("champion") == "2"
    tags = client().get_model_version(MODEL, promote["version"]).tags
    assert tags["flywheel.gate.verdict"] == "rejected"
    assert tags["flywheel.gate.reason"] == promote["reason"]


def flywheel_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as a user runs it: exit code and stderr are what count."""
    return subprocess.run(
        [sys.executable, "-m", "flywheel.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def status_json(root: Path) -> dict:
    import json

    done = flywheel_cli(root, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_status_reports_champion_and_previous_as_json(root: Path) -> None:
    info = status_json(root)
    assert info["model_name"] == MODEL
    assert info["champion"]["version"] == "2" and info["previous"]["version"] == "1"
    for key in ("version", "metrics", "git_commit", "data_md5"):
        assert key in info["champion"]
    assert info["champion"]["metrics"]["roc_auc"] >= 0.80


def replace_raw_data(root: Path, content: bytes) -> None:
    """A new upstream version of the raw data, versioned with DVC as it arrives."""
    from dvc.repo import Repo

    (root / "data" / "wa_churn.csv").write_bytes(content)
    with Repo(str(root)) as repo:
        repo.add("data")


def good_csv(root: Path) -> str:
    return (root / "data" / "wa_churn.csv").read_text()


def mutate(text: str, fn) -> bytes:  # type: ignore[no-untyped-def]
    import io

    import pandas as pd

    frame = pd.read_csv(io.StringIO(text))
    return fn(frame).to_csv(index=False).encode()


def _set(frame, column, value):  # type: ignore[no-untyped-def]
    frame[column] = value
    return frame


BAD_INPUTS = {
    "empty file": (lambda t: b"", DataError, "empty"),
    "not a CSV at all": (lambda t: bytes(range(256)) * 40, FlywheelError, "wa_churn.csv"),
    "missing column": (
        lambda t: mutate(t, lambda f: f.drop(columns="tenure")),
        ValidationFailed,
        "tenure",
    ),
    "renamed target": (
        lambda t: mutate(t, lambda f: f.rename(columns={"churn": "Churn"})),
        ValidationFailed,
        "churn",
    ),
    "text where numbers belong": (
        lambda t: mutate(t, lambda f: _set(f, "monthly_charges", "about fifty")),
        ValidationFailed,
        "monthly_charges",
    ),
    "out of range values": (
        lambda t: mutate(t, lambda f: _set(f, "tenure", f["tenure"] * -1 - 1)),
        ValidationFailed,
        "tenure",
    ),
    "flood of unseen categories": (
        lambda t: mutate(t, lambda f: _set(f, "contract", "Weekly")),
        ValidationFailed,
        "contract",
    ),
    "all-null column": (
        lambda t: mutate(t, lambda f: _set(f, "total_charges", None)),
        ValidationFailed,
        "total_charges",
    ),
    "single-class target": (
        lambda t: mutate(t, lambda f: _set(f, "churn", "No")),
        ValidationFailed,
        "churn",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_data_stops_at_validation_and_loses_nothing(root: Path, case: str) -> None:
    make, error, needle = BAD_INPUTS[case]
    pristine = (root / "data" / "wa_churn.csv").read_bytes()
    dvc_file = (root / "data.dvc").read_text()
    before, champion = versions(), alias("champion")
    replace_raw_data(root, make(pristine.decode()))
    try:
        with pytest.raises(error) as caught:
            run_flow(root)
    finally:
        (root / "data" / "wa_churn.csv").write_bytes(pristine)
        (root / "data.dvc").write_text(dvc_file)
    assert needle in str(caught.value)
    assert versions() == before and alias("champion") == champion
    assert not (root / "artifacts" / "featurize" / "FAILED").exists()


def test_cli_run_with_broken_data_exits_non_zero_with_one_line(root: Path) -> None:
    pristine = (root / "data" / "wa_churn.csv").read_bytes()
    dvc_file = (root / "data.dvc").read_text()
    replace_raw_data(root, mutate(pristine.decode(), lambda f: f.drop(columns="contract")))
    try:
        done = flywheel_cli(root, "step", "validate")
    finally:
        (root / "data" / "wa_churn.csv").write_bytes(pristine)
        (root / "data.dvc").write_text(dvc_file)
    assert done.returncode == ValidationFailed.exit_code
    assert "contract" in done.stderr and "Traceback" not in done.stderr


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


def test_run_on_another_table_infers_its_spec_and_registers_its_own_model(root: Path) -> None:
    import numpy as np
    import pandas as pd
    from typer.testing import CliRunner

    from flywheel.cli import app

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

    result = CliRunner().invoke(app, ["run", "--data", str(path), "--target", "cancelled"])
    assert result.exit_code == 0, result.output

    spec = yaml.safe_load((root / "specs" / "accounts.yaml").read_text())
    assert spec["target"] == "cancelled" and spec["positive_class"] == "yes"
    assert spec["id_columns"] == ["account"]
    from flywheel.registry.store import version_by_alias

    own = version_by_alias(client(), "flywheel-accounts", "champion")
    assert own is not None and str(own.version) == "1"
    assert alias("champion") == champion  # the churn model was neither compared nor replaced


def test_multiclass_table_is_refused_with_a_clear_message(root: Path) -> None:
    import pandas as pd
    from typer.testing import CliRunner

    from flywheel.cli import app

    path = root / "three.csv"
    pd.DataFrame({"x": range(600), "label": ["a", "b", "c"] * 200}).to_csv(path, index=False)
    result = CliRunner().invoke(app, ["run", "--data", str(path), "--target", "label"])
    assert result.exit_code == 2
    assert "multiclass targets are not supported yet" in result.output
