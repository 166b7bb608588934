"""What the image folders' end-to-end modules share: one project per module, the registry's
names, and the real `flywheel serve` answering uploads on 127.0.0.1."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.alerting import start
from tests.conftest import make_project, project_in_use
from tests.integration.serving.conftest import free_port

CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Path]:
    """A project of the module's own (e2e time is scarce: its image set trains once)."""
    root = make_project(tmp_path_factory.mktemp("images") / "project")
    with project_in_use(root, chdir=True, PREFECT_API_URL=prefect_server):
        yield root


def registered(root: Path) -> set[str]:
    """The names in the project's MLflow registry (empty before the first registration)."""
    db = root / "mlflow.db"
    if not db.is_file():
        return set()
    with sqlite3.connect(db) as con:
        return {name for (name,) in con.execute("select name from registered_models")}


@contextmanager
def served(root: Path, model: str) -> Iterator[httpx.Client]:
    """`flywheel serve --model MODEL` as its own process, ready, and a client to it."""
    port = free_port()
    with ExitStack() as stack:
        running = start(stack, f"serve-{model}",
                        [str(Path(sys.executable).parent / "flywheel"), "serve", "--port",
                         str(port), "--model", model],
                        cwd=root, env={**os.environ, "FLYWHEEL_ROOT": str(root)},
                        url=f"http://127.0.0.1:{port}", probe="/readyz")
        yield stack.enter_context(httpx.Client(base_url=running.url, timeout=60))


def upload(client: httpx.Client, path: Path) -> dict:
    """The service's answer to one file sent as a user's browser would: multipart field
    `image`, with the file's name and the content type of its extension."""
    answer = client.post("/predict_image", files={
        "image": (path.name, path.read_bytes(), CONTENT_TYPES[path.suffix.lower()])})
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
    (first,) = answer.json()
    return first
