"""The model a bento carries is the registered one: its SHA-256 travels with it and is checked.

`flywheel bento`'s build (`build_bento`: import the champion with the registered digest in its
metadata, pin requirements, build) runs in a fresh interpreter with its own BENTOML_HOME against
the session's real registry; the bundled model loads while intact. Its pickle is then altered
on disk, as someone with write access to the model store would, and `bentoml serve` of the
bento must refuse to start with one line instead of unpickling it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_program
from tests.integration.serving.conftest import (
    ROOT,
    Registry,
    free_port,
    stop_process,
    write_params,
)

pytestmark = pytest.mark.slow

SCRIPT = """
from pathlib import Path

import bentoml

from flywheel.serving.launch import build_bento
from flywheel.serving.registry_watch import BUNDLED_MODEL, load_bundled

print("built", build_bento(), flush=True)
print("loaded version", load_bundled().version, flush=True)
stored = bentoml.models.get(f"{BUNDLED_MODEL}:latest")
pickled = Path(stored.path_of("mlflow_model")) / "artifacts" / "model.pkl"
pickled.write_bytes(pickled.read_bytes() + b"# altered inside the model store")
"""
START_TIMEOUT_S = 300  # a refusal ends the server; this only bounds a test that would hang


def test_a_bento_whose_bundled_model_was_altered_refuses_to_start(
    registry: Registry, tmp_path: Path
) -> None:
    uv = require_program(str(ROOT / ".tools" / "bin" / "uv"))  # `bentoml build` needs it
    env = {
        **os.environ,
        "PATH": f"{Path(uv).parent}{os.pathsep}{os.environ['PATH']}",
        "FLYWHEEL_ROOT": str(ROOT),
        "FLYWHEEL_PARAMS_FILE": str(write_params(tmp_path / "params.yaml", registry.name)),
        "FLYWHEEL_TRACKING_URI": registry.uri,
        "FLYWHEEL_INFERENCE_LOG_DIR": str(tmp_path / "inference-log"),
        "BENTOML_HOME": str(tmp_path / "bentoml-home"),
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    built = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "loaded version 1" in built.stdout, built.stdout  # intact: it loads
    log = _serve_bento(env, tmp_path / "serve.log")
    refusals = [line for line in log.splitlines() if "refusing to start" in line]
    assert len(refusals) == 1, log[-3000:]
    assert "SHA-256" in refusals[0] and "bundled model flywheel-champion:v1" in refusals[0]
    assert "Traceback" not in log and "Service flywheel initialized" not in log, log[-3000:]


def _serve_bento(env: dict[str, Any], output: Path) -> str:
    """`bentoml serve flywheel:latest` until it ends by itself; its log."""
    bentoml = Path(sys.executable).with_name("bentoml")
    command = [
        str(bentoml),
        "serve",
        "flywheel:latest",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
    ]
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=output.parent,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        process.wait(timeout=START_TIMEOUT_S)
    finally:
        stop_process(process)
    return output.read_text(errors="replace")
