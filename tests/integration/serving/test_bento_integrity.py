"""The model a bento carries is the registered one: its SHA-256 travels with it and is checked.

`flywheel bento` imports the champion into BentoML's model store (`import_champion`, the first
half of the build) with the registered digest in the metadata; a service started from the bento
loads it through `load_bundled`, which hashes the bundled files first. Both run here in one
fresh interpreter with its own BENTOML_HOME against the session's real registry; the bundled
pickle is then altered on disk, as someone with write access to the bento would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.registry.integrity import IntegrityError
from tests.integration.serving.conftest import ROOT, Registry, write_params

pytestmark = pytest.mark.slow

SCRIPT = """
import sys
from pathlib import Path

import bentoml

from flywheel.errors import FlywheelError
from flywheel.serving.launch import import_champion
from flywheel.serving.registry_watch import BUNDLED_MODEL, load_bundled

print("imported", import_champion(), flush=True)
print("loaded version", load_bundled().version, flush=True)
stored = bentoml.models.get(f"{BUNDLED_MODEL}:latest")
pickled = Path(stored.path_of("mlflow_model")) / "artifacts" / "model.pkl"
pickled.write_bytes(pickled.read_bytes() + b"# altered inside the bento")
try:
    load_bundled()
except FlywheelError as exc:
    print(exc, file=sys.stderr)
    raise SystemExit(exc.exit_code)
"""


def test_a_bundled_model_altered_after_the_build_is_refused(
    registry: Registry, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "FLYWHEEL_ROOT": str(ROOT),
        "FLYWHEEL_PARAMS_FILE": str(write_params(tmp_path / "params.yaml", registry.name)),
        "FLYWHEEL_TRACKING_URI": registry.uri,
        "MLFLOW_TRACKING_URI": registry.uri,
        "BENTOML_HOME": str(tmp_path / "bentoml-home"),
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "loaded version 1" in done.stdout, done.stderr[-3000:]  # intact: it loads
    assert done.returncode == IntegrityError.exit_code, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "SHA-256" in last and "bundled model flywheel-champion:v1" in last
