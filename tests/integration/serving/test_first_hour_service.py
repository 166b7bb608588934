"""What a new user meets at the service's port (issue 20): a champion whose files were altered
is named as such, not as "no champion yet"; the Swagger page and its OpenAPI document."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.integration.serving.conftest import Registry, Server, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def altered_server(tmp_path_factory: pytest.TempPathFactory,
                   empty_registry: Registry) -> Iterator[tuple[Server, str]]:
    """A champion registered and signed from a copy of the model's files, then one of those
    files altered (as a tool editing the artifact store would): the service cannot serve it."""
    tmp = tmp_path_factory.mktemp("altered")
    source = urlparse(empty_registry.artifacts).path or empty_registry.artifacts
    copy = tmp / "model"
    shutil.copytree(source, copy)
    version = empty_registry.register(commit="c0ffee9", data_md5="data-v9",
                                      source=copy.as_uri())
    with (copy / "MLmodel").open("a") as edited:
        edited.write("# edited after registration\n")
    running = start_server(tmp / "server", empty_registry, wait_ready=False)
    yield running, version
    stop_server(running)
    empty_registry.client().delete_registered_model_alias(empty_registry.name, "champion")


def test_an_altered_champion_is_named_not_reported_missing(
        altered_server: tuple[Server, str], records: list[dict[str, Any]]) -> None:
    server, version = altered_server
    expected = f"the champion v{version} failed its integrity check"
    for response in (server.client.post("/predict", json=records[0]),
                     server.client.get("/readyz"), server.client.get("/metadata")):
        assert response.status_code == 503
        error = response.json()["error"]
        assert expected in error and "SHA-256" in error, error
        assert "no '" not in error and "yet" not in error, error
    assert expected in server.logs()
