"""The batch-scoring flow on the session's Prefect server: a run that is visible in its API."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.integration.serving.conftest import ROOT, _train_and_log

pytestmark = pytest.mark.slow


def test_the_flow_scores_a_file_and_its_run_is_in_the_prefect_api(
    tmp_path: Path, prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    from pipelines.batch_scoring import batch_scoring

    registry = _train_and_log(tmp_path)
    registry.register(commit="c-flow", data_md5="d-flow")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["promote"]["model_name"] = registry.name
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for key, value in {
        "FLYWHEEL_ROOT": str(ROOT),
        "FLYWHEEL_PARAMS_FILE": str(tmp_path / "params.yaml"),
        "FLYWHEEL_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "FLYWHEEL_TRACKING_URI": registry.uri,
    }.items():
        monkeypatch.setenv(key, value)
    source = tmp_path / "new.parquet"
    pd.read_csv(ROOT / "data" / "wa_churn.csv").head(500).to_parquet(source)

    state = batch_scoring(source=str(source), return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    assert (summary["scored"], summary["rejected"], summary["model_version"]) == (500, 0, "1")
    scored = pd.read_parquet(summary["output"])
    assert set(scored["git_commit"]) == {"c-flow"} and len(scored) == 500
    with get_client(sync_client=True) as prefect:
        run = prefect.read_flow_run(state.state_details.flow_run_id)
    assert run.state is not None and run.state.is_completed()
