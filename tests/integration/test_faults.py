"""Crashes, a second writer, and a disk that refuses writes, on one real project.

Each step runs as `flywheel step NAME` in a process of its own (what `dvc repro` calls) and
is SIGKILLed at an exact moment: `FLYWHEEL_TEST_PAUSE_AT` makes it stop and say so on stderr
(`flywheel.pause`). The tests share one project and run in file order; training is shrunk to
logistic regression so the whole module stays cheap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.errors import ProjectBusy, StorageError
from flywheel.registry.integrity import IntegrityError
from tests.conftest import cli_command, cli_env, make_project, project_in_use, run_cli

pytestmark = pytest.mark.slow

STEPS = ("validate", "featurize", "train", "evaluate", "promote")
MODEL = "flywheel-churn"
PAUSE_TIMEOUT_S = 600
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    project = make_project(
        tmp_path_factory.mktemp("faults") / "project",
        params={"train": {"candidates": ["logreg"]}, "promote": {"bootstrap": {"resamples": 100}}},
    )
    with (
        project_in_use(project, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"),
        pytest.MonkeyPatch.context() as env,
    ):
        env.delenv("FLYWHEEL_TEST_PAUSE_AT", raising=False)
        yield project


def cli_with_hook(
    root: Path, sitecustomize: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The CLI with `sitecustomize` run first: a fault injected inside the real process."""
    hooks = Path(tempfile.mkdtemp(prefix="hooks-", dir=root.parent))
    (hooks / "sitecustomize.py").write_text(sitecustomize)
    path = f"{hooks}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    return run_cli(root, *args, PYTHONPATH=path, **env)


def killed_at(root: Path, point: str, *args: str) -> str:
    """Run the CLI until it reaches `point`, SIGKILL it there, and return its stderr."""
    log = root.parent / f"killed-{point.replace(':', '-')}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            cli_command(*args),
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=cli_env(root, FLYWHEEL_TEST_PAUSE_AT=point),
        )
    try:
        deadline = time.monotonic() + PAUSE_TIMEOUT_S
        while f"paused at {point}" not in log.read_text():
            assert process.poll() is None, f"ended before {point}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never reached {point}"
            time.sleep(0.2)
        TALLY[f"kill -9 at {point}"] += 1
        return log.read_text()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def leftovers(root: Path) -> list[str]:
    artifacts = root / "artifacts"
    hidden = [p for p in artifacts.iterdir() if p.name.startswith(".") and p.is_dir()]
    temps = list(artifacts.rglob(".*.tmp"))
    return sorted(str(p.relative_to(artifacts)) for p in [*hidden, *temps])


def digest(folder: Path) -> str:
    from flywheel.registry.integrity import tree_sha256

    return tree_sha256(folder)


def status(root: Path) -> dict:
    done = run_cli(root, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return lines[0]


def the_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """A step's stderr also carries MLflow's warnings: exactly one error line, no traceback."""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.rstrip().endswith(errors[0]), done.stderr[-3000:]
    return errors[0]


def test_kill_9_inside_each_step_leaves_nothing_half_written(root: Path) -> None:
    """Killed after staging its outputs, before swapping them in: the folder never appears,
    the staging folder is cleared by the next writer, and the rerun completes."""
    for step in STEPS[:4]:
        killed_at(root, f"staged:{step}", "step", step)
        assert not (root / "artifacts" / step).exists()
        assert any(name.startswith(f".{step}.") for name in leftovers(root))
        if step == "train":
            assert status(root)["last_run"]["state"] == "interrupted"
        done = run_cli(root, "step", step)
        assert done.returncode == 0, done.stderr[-3000:]
        assert leftovers(root) == []
    assert (root / "artifacts" / "evaluate" / "predictions.parquet").is_file()
    assert (root / "artifacts" / "evaluate" / "champion.json").is_file()


def test_a_second_writer_is_refused_with_one_line(root: Path) -> None:
    log = root.parent / "holder.log"
    with log.open("w") as sink:
        holder = subprocess.Popen(
            cli_command("step", "featurize"),
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=cli_env(root, FLYWHEEL_TEST_PAUSE_AT="staged:featurize"),
        )
    try:
        deadline = time.monotonic() + PAUSE_TIMEOUT_S
        while "paused at" not in log.read_text():
            assert holder.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        busy = run_cli(root, "step", "train")
        assert busy.returncode == ProjectBusy.exit_code
        assert "another Flywheel run is writing this project" in one_error_line(busy)
        assert "flywheel step featurize" in busy.stderr
        TALLY["second writer"] += 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)


def test_flywheel_run_refuses_while_dvc_repro_runs_a_stage(root: Path) -> None:
    """While a stage command runs, DVC 3.67 lists itself in .dvc/tmp/rwlock (measured: it
    releases .dvc/tmp/lock then); between stages it holds the flock on .dvc/tmp/lock."""
    import zc.lockfile

    tmp = root / ".dvc" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    out = str(root / "artifacts" / "train")
    entry = {"pid": os.getpid(), "cmd": "dvc repro"}
    (tmp / "rwlock").write_text(json.dumps({"write": {out: entry}, "read": {out: [entry]}}))
    try:
        during_stage = run_cli(root, "run")
    finally:
        (tmp / "rwlock").write_text(json.dumps({"read": {}}))
    held = zc.lockfile.LockFile(str(tmp / "lock"))  # as DVC holds it between stages
    try:
        between_stages = run_cli(root, "run")
    finally:
        held.close()
    for busy in (during_stage, between_stages):
        assert busy.returncode == ProjectBusy.exit_code
        assert "wait for it to finish" in one_error_line(busy)
    assert "dvc repro" in during_stage.stderr
    TALLY["run during dvc repro"] += 2


def test_kill_while_a_folder_is_moved_aside_restores_the_last_complete_one(root: Path) -> None:
    before = digest(root / "artifacts" / "featurize")
    killed_at(root, "moved-aside:featurize", "step", "featurize")
    assert not (root / "artifacts" / "featurize").exists()  # only the aside copy is left
    assert status(root)["last_run"]["state"] == "interrupted"
    done = run_cli(root, "step", "train")  # the next writer puts the last complete folder back
    assert done.returncode == 0, done.stderr[-3000:]
    assert digest(root / "artifacts" / "featurize") == before
    assert leftovers(root) == []


ALTER_AFTER_REGISTERING = """
import os

if os.environ.pop("FLYWHEEL_TEST_ALTER_REGISTERED", None):  # the load checker must not patch
    from pathlib import Path

    import mlflow

    _real = mlflow.register_model

    def _register_then_alter(model_uri, name, *args, **kwargs):
        version = _real(model_uri, name, *args, **kwargs)
        uri = mlflow.MlflowClient().get_model_version_download_uri(name, version.version)
        pickled = Path(uri.removeprefix("file://")) / "artifacts" / "model.pkl"
        pickled.write_bytes(pickled.read_bytes() + b"# altered after registration")
        return version

    mlflow.register_model = _register_then_alter
"""


def test_promote_refuses_files_altered_between_registering_and_the_load_check(
    root: Path,
) -> None:
    """The fresh-process load check hashes the stored files before unpickling them."""
    from flywheel.registry.store import connect
    from flywheel.settings import settings

    done = cli_with_hook(
        root, ALTER_AFTER_REGISTERING, "step", "promote", FLYWHEEL_TEST_ALTER_REGISTERED="1"
    )
    assert done.returncode == IntegrityError.exit_code
    line = the_error_line(done)
    assert "SHA-256" in line and "version 1" in line
    assert not connect(settings()).get_model_version(MODEL, "1").aliases
    assert status(root)["champion"] is None
    assert not (root / "artifacts" / "promote" / "decision.json").exists()
    assert leftovers(root) == []
    TALLY["altered between registering and the load check"] += 1


def test_kill_between_registering_and_moving_the_alias(root: Path) -> None:
    from flywheel.registry.integrity import verify_version
    from flywheel.registry.store import connect, version_by_alias
    from flywheel.settings import settings

    killed_at(root, "promote:registered", "step", "promote")
    info = status(root)
    assert info["champion"] is None and info["last_run"]["state"] == "interrupted"
    done = run_cli(root, "step", "promote")
    assert done.returncode == 0, done.stderr[-3000:]
    client = connect(settings())
    champion = version_by_alias(client, MODEL, "champion")
    assert champion is not None and str(champion.version) == "3"
    verify_version(champion)  # the aliased version's files are complete and as registered
    for refused in ("1", "2"):  # altered (test above), killed before its alias moved
        assert not client.get_model_version(MODEL, refused).aliases
    assert status(root)["last_run"]["state"] == "finished"


def test_altered_artifacts_are_refused_by_rollback_and_batch_scoring(root: Path) -> None:
    """Someone rewrites a stored model's pickle: no load, no alias move, one line, exit 5."""
    from flywheel.registry.store import connect
    from flywheel.settings import settings

    client = connect(settings())
    client.set_registered_model_alias(MODEL, "previous", "2")
    altered = []
    for version in ("2", "3"):
        uri = client.get_model_version_download_uri(MODEL, version)
        pickled = Path(uri.removeprefix("file://")) / "artifacts" / "model.pkl"
        altered.append((pickled, pickled.read_bytes()))
        pickled.write_bytes(pickled.read_bytes() + b"# altered")
    try:
        back = run_cli(root, "rollback")
        assert back.returncode == IntegrityError.exit_code
        assert "SHA-256" in one_error_line(back) and "version 2" in back.stderr
        assert status(root)["champion"]["version"] == "3"
        scoring = run_cli(root, "step", "evaluate")  # scores the champion next to the candidate
        assert scoring.returncode == IntegrityError.exit_code
        assert "SHA-256" in one_error_line(scoring) and "version 3" in scoring.stderr
    finally:
        for pickled, content in altered:
            pickled.write_bytes(content)
        client.delete_registered_model_alias(MODEL, "previous")
    TALLY["altered artifacts (rollback, batch scoring)"] += 2


SITECUSTOMIZE = """
import errno, os
from contextlib import contextmanager
import flywheel.atomic as atomic

_real = atomic.replacing_dir


@contextmanager
def _full_disk(target):
    with _real(target) as staging:
        yield staging
        if target.name == os.environ.get("FLYWHEEL_TEST_DISK_FULL"):
            raise OSError(errno.ENOSPC, "No space left on device", str(staging / "x"))


atomic.replacing_dir = _full_disk
"""


def test_disk_full_and_unwritable_folder_stop_cleanly(root: Path) -> None:
    """ENOSPC is injected at the write helper (root in CI ignores permissions, and mounting
    a small tmpfs needs privileges); an artifacts folder below a file is a real ENOTDIR."""
    featurize, champion = digest(root / "artifacts" / "featurize"), status(root)["champion"]
    full = cli_with_hook(
        root, SITECUSTOMIZE, "step", "featurize", FLYWHEEL_TEST_DISK_FULL="featurize"
    )
    assert full.returncode == StorageError.exit_code
    assert "No space left on device" in one_error_line(full)
    assert digest(root / "artifacts" / "featurize") == featurize
    assert leftovers(root) == []

    blocker = root.parent / "a-file"
    blocker.write_text("not a folder\n")
    elsewhere = str(blocker / "artifacts")
    unwritable = run_cli(root, "step", "featurize", FLYWHEEL_ARTIFACTS_DIR=elsewhere)
    assert unwritable.returncode == StorageError.exit_code
    assert "Not a directory" in one_error_line(unwritable)
    assert status(root)["champion"] == champion
    TALLY["disk full / unwritable"] += 2
    print(f"\nfaults tried: {dict(TALLY)}")
