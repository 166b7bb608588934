"""Delayed labels through the real service and the CLI, joined to the real inference log.

One server for the module: predictions are answered and logged under chosen request ids, then
labelled through `POST /feedback` (good, bad and unknown) and `flywheel feedback FILE`; the
live metrics are computed from what both stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flywheel.data.task import Task
from tests.conftest import run_cli
from tests.integration.serving.conftest import (
    ROOT,
    Registry,
    Server,
    start_server,
    stop_server,
    wait_for,
)
from tests.integration.serving.test_service import sample_value, scrape

pytestmark = pytest.mark.slow


YES_NO = Task("binary", ("No", "Yes"))


@pytest.fixture(scope="module")
def labelled_server(
    tmp_path_factory: pytest.TempPathFactory, registry: Registry
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("feedback-server")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLYWHEEL_FEEDBACK_DIR", str(tmp / "feedback"))
        running = start_server(tmp, registry)
    yield running
    stop_server(running)


ANSWERED: list[str] = []  # request ids the first test had answered, in order


def feedback_dir(server: Server) -> Path:
    """The served model's own labels (FLYWHEEL_FEEDBACK_DIR is their parent)."""
    return server.home.parent / "feedback" / server.log_dir.name


def logged_ids(server: Server) -> set[str]:
    import pyarrow.parquet as pq

    return {
        i
        for path in server.log_dir.glob("*.parquet")
        for i in pq.read_table(path, columns=["request_id"]).column(0).to_pylist()
    }


def test_feedback_endpoint_stores_good_labels_and_refuses_bad_ones(
    labelled_server: Server, records: list[dict[str, Any]]
) -> None:
    client = labelled_server.client
    auth = labelled_server.auth("feedback")
    ids = []
    for record in records[:40]:
        answer = client.post("/predict", json=record)
        assert answer.status_code == 200, answer.text
        ids.append(answer.headers["x-request-id"])
    ANSWERED.extend(ids)
    wait_for(lambda: set(ids) <= logged_ids(labelled_server), 30, "the log to hold the ids")

    labels = [
        {"request_id": i, "label": "Yes" if n % 3 == 0 else "No"} for n, i in enumerate(ids[:30])
    ]
    stored = client.post("/feedback", json=labels, headers=auth)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"accepted": 30}

    files = sorted(feedback_dir(labelled_server).glob("*.parquet"))
    bad = client.post(
        "/feedback",
        json=[{"request_id": ids[30], "label": "Yes"}, {"request_id": ids[31], "label": "maybe"}],
        headers=auth,
    )
    assert bad.status_code == 422 and "'maybe'" in bad.json()["error"]
    unknown = client.post("/feedback", json={"request_id": "never-answered", "label": "No"},
                          headers=auth)
    assert unknown.status_code == 404 and "never-answered" in unknown.json()["error"]
    not_json = client.post("/feedback", content=b"{not json",
                           headers={**auth, "Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert client.post("/feedback", json={"request_id": ids[1]}, headers=auth).status_code == 422
    assert sorted(feedback_dir(labelled_server).glob("*.parquet")) == files  # nothing stored

    metrics = scrape(labelled_server)
    assert sample_value(metrics, "flywheel_feedback_total", outcome="accepted") == 30
    assert sample_value(metrics, "flywheel_feedback_total", outcome="bad_label") == 1
    assert sample_value(metrics, "flywheel_feedback_total", outcome="unknown_request_id") == 1
    assert sample_value(metrics, "flywheel_feedback_total", outcome="bad_request") == 2
    promoted = sample_value(metrics, "flywheel_model_promoted_timestamp_seconds", model_version="1")
    assert abs(promoted - datetime.now(UTC).timestamp()) < 86_400


def test_feedback_file_from_the_cli_then_live_metrics(
    labelled_server: Server, tmp_path: Path
) -> None:
    from flywheel.errors import DataError
    from flywheel.monitoring.feedback import RequestIndex, import_feedback
    from flywheel.monitoring.live import labelled_predictions, live_metrics

    env = {
        "FLYWHEEL_INFERENCE_LOG_DIR": str(labelled_server.log_dir.parent),
        "FLYWHEEL_FEEDBACK_DIR": str(feedback_dir(labelled_server).parent),
        # The server's params: its model is the default, whose log and labels these are.
        "FLYWHEEL_PARAMS_FILE": str(labelled_server.home.parent / "params.yaml"),
    }
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"request_id": [ANSWERED[30], "nope"], "label": ["Yes", "No"]}).to_csv(bad)
    with pytest.raises(DataError, match="nothing stored.*nope"):  # the whole file is refused
        import_feedback(
            bad,
            YES_NO,
            RequestIndex(labelled_server.log_dir),
            feedback_dir(labelled_server),
            skip_unknown=False,
        )
    done = run_cli(ROOT, "feedback", str(bad), "--skip-unknown", **env)
    assert done.returncode == 0, done.stderr
    assert "accepted=1" in done.stdout and "unknown_request_id=1" in done.stdout

    rows = labelled_predictions(
        labelled_server.log_dir,
        feedback_dir(labelled_server),
        YES_NO,
        datetime.now(UTC) - timedelta(hours=1),
    )
    assert len(rows) == 31 and set(rows["model_version"]) == {"1"}
    metrics = live_metrics(YES_NO, rows["y"].to_numpy(), rows["answered"].to_numpy())
    assert metrics["labelled_rows"] == 31 and metrics["positive_rate"] == pytest.approx(11 / 31)
    assert 0 <= metrics["roc_auc"] <= 1 and 0 <= metrics["brier"] <= 1
