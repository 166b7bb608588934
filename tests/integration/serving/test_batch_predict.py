"""`flywheel predict` as a user runs it: the CLI in a subprocess against a real MLflow registry.

The registry holds two versions of the serving tests' trained model with different lineage,
version 2 being champion; params set a small chunk so a few hundred rows already stream
through several chunks (bad rows included), as a file larger than memory would.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import run_cli
from tests.integration.serving.conftest import MODEL_NAME, ROOT, Registry

pytestmark = pytest.mark.slow
CHUNK_ROWS = 100


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> dict[str, Any]:
    """A registry with versions 1 and 2 (champion) and the environment the CLI runs in."""
    import mlflow

    tmp = tmp_path_factory.mktemp("batch")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()  # create it
    scoring = Registry(uri=uri, name=MODEL_NAME, model_source=registry.artifacts)
    scoring.register(commit="c-one", data_md5="d-one")
    scoring.register(commit="c-two", data_md5="d-two")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["promote"]["model_name"] = MODEL_NAME
    params["predict"]["chunk_rows"] = CHUNK_ROWS
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    env = {
        **os.environ,
        "FLYWHEEL_ROOT": str(ROOT),
        "FLYWHEEL_PARAMS_FILE": str(tmp / "params.yaml"),
        "FLYWHEEL_ARTIFACTS_DIR": str(tmp / "artifacts"),
        "FLYWHEEL_TRACKING_URI": uri,
        "MLFLOW_TRACKING_URI": uri,
    }
    return {"tmp": tmp, "env": env, "uri": uri}


def predict(workdir: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(ROOT, "predict", *args, base=workdir["env"], cwd=workdir["tmp"])


def table(rows: int) -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "wa_churn.csv").head(rows)


def test_csv_with_bad_rows_scores_the_good_and_reports_the_bad(workdir: dict[str, Any]) -> None:
    frame = table(450).astype({"tenure": object})
    frame.loc[5, "tenure"] = "twelve"  # text in a numeric column, first chunk
    frame.loc[260, "tenure"] = 500  # over the spec's max, third chunk
    frame.loc[401, "contract"] = None  # a required category left blank, fifth chunk
    source = workdir["tmp"] / "customers.csv"
    frame.to_csv(source, index=False)

    done = predict(workdir, str(source))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (450, 447, 3)
    assert summary["model_version"] == "2"  # the champion by default

    scored = pd.read_parquet(summary["output"])
    assert Path(summary["output"]).is_relative_to(workdir["tmp"] / "artifacts")
    assert scored["rownames"].tolist() == frame.drop(index=[5, 260, 401])["rownames"].tolist()
    assert scored["probability"].between(0, 1).all()
    assert set(scored["prediction"]) <= {"Yes", "No"}
    assert set(
        zip(scored["model_version"], scored["git_commit"], scored["data_md5"], strict=True)
    ) == {("2", "c-two", "d-two")}

    rejects = pd.read_csv(summary["rejects"])
    assert rejects["row"].tolist() == [5, 260, 401]
    assert rejects["problem"].tolist() == [
        "tenure: not a number",
        "tenure: above the spec's max 120",
        "contract: missing (the spec does not allow nulls)",
    ]
    assert rejects["rownames"].tolist() == [6, 261, 402]  # the input row, kept whole
    assert not list(Path(summary["output"]).parent.glob(".*.tmp"))


def test_parquet_with_a_chosen_version(workdir: dict[str, Any]) -> None:
    source = workdir["tmp"] / "month.parquet"
    table(250).to_parquet(source)  # int64, float64 and string columns as pandas wrote them
    out = workdir["tmp"] / "scored" / "month.parquet"
    done = predict(workdir, str(source), "--output", str(out), "--version", "1")
    assert done.returncode == 0, done.stderr
    scored = pd.read_parquet(out)
    assert len(scored) == 250
    assert set(scored["model_version"]) == {"1"} and set(scored["git_commit"]) == {"c-one"}
    assert not out.with_name("month.rejects.csv").exists()


def test_a_file_missing_a_column_is_one_line_and_writes_nothing(
    workdir: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.batch.score import make_job, score_file
    from flywheel.errors import DataError
    from flywheel.settings import settings

    for key, value in workdir["env"].items():
        if key.startswith(("FLYWHEEL_", "MLFLOW_")):
            monkeypatch.setenv(key, value)
    source = workdir["tmp"] / "no-tenure.csv"
    table(50).drop(columns="tenure").to_csv(source, index=False)
    out = workdir["tmp"] / "no-tenure.parquet"
    current = settings()
    with pytest.raises(DataError, match=r"missing feature columns \['tenure'\]"):
        score_file(current, make_job(current, source, out))
    assert not out.exists()
    assert not list(out.parent.glob(".no-tenure*"))
