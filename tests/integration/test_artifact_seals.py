"""A pickle dropped in place of a step's artifact runs nothing in the next step (steps/sealed.py).

The attack: whoever can write into `artifacts/` replaces `encodings.pkl` or `model.pkl` with a
pickle whose `__reduce__` runs a command, and waits for the next `flywheel step`. The steps run
for real through the CLI on one project trained once for the module (logreg only).
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.registry.signing import ensure_keyring
from flywheel.steps.sealed import seal_path, write_sealed
from tests.conftest import make_project, project_in_use, run_cli

pytestmark = pytest.mark.slow

# (the artifact, the step that unpickles it, the step that writes it again, the forgery);
# every forgery against both files is refused in tests/unit/test_artifact_seal.py
ARTIFACTS = [
    ("featurize/encodings.pkl", "train", "flywheel step featurize", "attacker's key"),
    ("train/model.pkl", "evaluate", "flywheel step train", "sha256 sidecar"),
]


class Payload:
    """Unpickling this touches the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("seals")
    # `src` too: the stages depend on it, and the DVC test commits them
    project = make_project(
        base / "project", params={"train": {"candidates": ["logreg"]}}, extra=("src",)
    )
    with project_in_use(project):
        for name in ("validate", "featurize", "train"):
            done = run_cli(project, "step", name)
            assert done.returncode == 0, done.stderr
        yield project


@pytest.fixture()
def genuine(root: Path, tmp_path: Path) -> Iterator[Path]:
    """The trained artifacts as they were, put back after the test whatever it dropped."""
    kept = tmp_path / "kept"
    for folder in ("featurize", "train"):
        shutil.copytree(root / "artifacts" / folder, kept / folder)
    yield root
    for folder in ("featurize", "train"):
        shutil.rmtree(root / "artifacts" / folder)
        shutil.copytree(kept / folder, root / "artifacts" / folder)


def test_the_payload_runs_when_unpickled(tmp_path: Path) -> None:
    """Control: the dropped file is a real attack (a plain `pickle.load` runs it)."""
    marker = tmp_path / "PWNED"
    dropped = tmp_path / "model.pkl"
    dropped.write_bytes(pickle.dumps(Payload(marker)))
    code = f"import pickle; pickle.loads(open({str(dropped)!r}, 'rb').read())"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert marker.exists()


@pytest.mark.parametrize(("artifact", "next_step", "rerun", "forged"), ARTIFACTS)
def test_a_dropped_pickle_is_refused_by_the_next_step(
    genuine: Path, tmp_path: Path, artifact: str, next_step: str, rerun: str, forged: str
) -> None:
    marker = tmp_path / "PWNED"
    target = genuine / "artifacts" / artifact
    payload = pickle.dumps(Payload(marker))
    if forged == "attacker's key":
        attacker = tmp_path / "attacker.key"
        ensure_keyring(attacker)
        write_sealed(target, payload, attacker)
    else:
        target.write_bytes(payload)
        seal_path(target).unlink()
        if forged == "sha256 sidecar":
            seal_path(target).write_text(hashlib.sha256(payload).hexdigest() + "\n")

    done = run_cli(genuine, "step", next_step)

    assert done.returncode == 3, done.stderr
    assert not marker.exists()
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(target) in done.stderr and rerun in done.stderr
    assert "Traceback" not in done.stderr


def test_sealed_artifacts_restored_from_dvc_cache_still_load(genuine: Path) -> None:
    """The seals live in the stages' out folders, so `dvc checkout` brings them back too."""
    dvc = [str(Path(sys.executable).with_name("dvc"))]
    committed = subprocess.run(
        [*dvc, "commit", "-f", "validate", "featurize", "train"],
        cwd=genuine, capture_output=True, text=True, timeout=300,
    )
    assert committed.returncode == 0, committed.stderr
    for folder in ("featurize", "train"):
        shutil.rmtree(genuine / "artifacts" / folder)
    restored = subprocess.run(
        [*dvc, "checkout", "featurize", "train"],
        cwd=genuine, capture_output=True, text=True, timeout=300,
    )
    assert restored.returncode == 0, restored.stderr
    assert seal_path(genuine / "artifacts/train/model.pkl").is_file()

    done = run_cli(genuine, "step", "evaluate")

    assert done.returncode == 0, done.stderr
