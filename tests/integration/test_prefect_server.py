"""`flywheel run`'s temporary Prefect server: a real API that holds the run, then goes away."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import prefect_server
from pipelines.prefect_server import prefect_api, start_server


def test_a_configured_api_gets_no_temporary_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert start_server() is None


@pytest.mark.slow
def test_temporary_server_holds_the_flow_run_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    @flow(name="flywheel-server-check")
    def tiny() -> int:
        return 42

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))  # a fresh clone's database
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")  # busy CI
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # The suite's own Prefect harness is configured in this process; a fresh `flywheel run`
    # process has none, which is the case under test.
    monkeypatch.setattr(prefect_server, "_configured_in_process", lambda: False)
    server = start_server()
    assert server is not None
    try:
        # Not the session's test harness: only what the environment and profile say.
        with temporary_settings(restore_defaults={PREFECT_API_URL}), prefect_api(server) as url:
            assert url == server.api_url and url.startswith("http://127.0.0.1:")
            state = tiny(return_state=True)
            with get_client(sync_client=True) as client:
                run = client.read_flow_run(state.state_details.flow_run_id)
            assert run.name and run.state is not None and run.state.is_completed()
            assert (tmp_path / "prefect" / "prefect.db").is_file()
    finally:
        server.stop()
    assert server.process.poll() is not None
