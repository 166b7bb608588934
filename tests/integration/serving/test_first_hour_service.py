"""What a new user meets at the service's port (issue 20): a champion whose files were altered
is named as such, not as "no champion yet"; the Swagger page and its OpenAPI document."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.browser import drawn_share, render
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


# --- the Swagger page and its OpenAPI document ------------------------------------------------

def unseen_categories(server: Server) -> float:
    from tests.integration.serving.test_service import sample_value, scrape

    return sample_value(scrape(server), "flywheel_unseen_categories_total")


def test_the_openapi_document_shows_every_route_and_a_real_example(server: Server) -> None:
    document = server.client.get("/docs.json").json()
    info = document["info"]
    assert info["version"] not in ("None", "") and "version 1" in info["description"]
    text = json.dumps(document)
    assert "shields.io" not in text and "badgen" not in text
    metadata = document["paths"]["/metadata"]["get"]["responses"]["200"]
    assert "model_version" in metadata["content"]["application/json"]["schema"]["properties"]
    feedback = document["paths"]["/feedback"]["post"]["requestBody"]["content"]
    label = feedback["application/json"]["schema"]["oneOf"][0]
    assert label["properties"]["label"]["enum"] == ["No", "Yes"]
    example = document["components"]["schemas"]["Record"]["example"]
    before = unseen_categories(server)
    answer = server.client.post("/predict", json=[example])  # what "Try it out" sends
    assert answer.status_code == 200, answer.text
    assert unseen_categories(server) == before


def test_the_swagger_page_renders_offline(server: Server, tmp_path: Path) -> None:
    png = tmp_path / "swagger.png"
    dom = render(f"{server.url}/", png)
    assert "Flywheel: flywheel-churn-test" in dom, dom[:3000]
    for route in ("/predict", "/metadata", "/feedback"):
        assert f">{route}<" in dom.replace("\u200b", ""), route
    assert "validator" not in dom and "None" not in dom
    assert drawn_share(png) > 0.02
