"""The MLP under DistributedDataParallel: two gloo ranks on CPU, through `flywheel step train`.

What a user does: set `train.mlp.nproc: 2` and run the train step, or, on several nodes, start
`flywheel step train` under torchrun with rendezvous settings (here: two torchrun processes on
loopback as two nodes). The result must have the shape of a single-process one (evaluate and
promote do not care) and a validation metric close to it with the same seed; a rank or a node
that dies must fail the step with one clear line, no hang, and leave the previous train outputs
in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flywheel.errors import TrainingFailed
from tests.conftest import make_project, project_in_use, run_cli, shrink_params
from tests.integration.serving.conftest import free_port

pytestmark = pytest.mark.slow
EPOCHS = 8

# Installed through PYTHONPATH into every process of the failing run; only torchrun's rank 1
# acts on it: its third all_reduce (the valid loss of epoch 3) raises, mid-training.
FAILING_RANK = """
import os
if os.environ.get("RANK") == "1":
    import torch.distributed as dist
    _real, _calls = dist.all_reduce, []
    def _failing(*args, **kwargs):
        _calls.append(1)
        if len(_calls) >= 3:
            raise RuntimeError("injected failure on rank 1")
        return _real(*args, **kwargs)
    dist.all_reduce = _failing
"""

# The same for a whole node: the rank started with FLYWHEEL_TEST_NODE_DIES kills its torchrun
# agent (its parent) and then itself at its third all_reduce, as when the machine goes away.
NODE_DIES = """
import os
if os.environ.get("FLYWHEEL_TEST_NODE_DIES") and os.environ.get("RANK"):
    import signal
    import torch.distributed as dist
    _real, _calls = dist.all_reduce, []
    def _dying(*args, **kwargs):
        _calls.append(1)
        if len(_calls) >= 3:
            os.kill(os.getppid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        return _real(*args, **kwargs)
    dist.all_reduce = _dying
"""
NODE_TIMEOUT_S = 240  # the bound on a multi-node run; a hang fails the test instead of CI


@contextmanager
def mlp_only(root: Path, **mlp: object) -> Iterator[None]:
    original = (root / "params.yaml").read_text()
    shrink_params(
        root / "params.yaml", train={"candidates": ["mlp"], "mlp": {"max_epochs": EPOCHS, **mlp}}
    )
    try:
        yield
    finally:
        (root / "params.yaml").write_text(original)


def train(
    root: Path, nproc: int, env: dict[str, str] | None = None, **mlp: object
) -> subprocess.CompletedProcess[str]:
    with mlp_only(root, nproc=nproc, **mlp), pytest.MonkeyPatch.context() as mp:
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        return run_cli(root, "step", "train")


def mlp_row(root: Path) -> dict:
    (row,) = json.loads((root / "artifacts/train/candidates.json").read_text())
    return row


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = make_project(tmp_path_factory.mktemp("ddp") / "project")
    with project_in_use(root):
        done = run_cli(root, "step", "featurize")
        assert done.returncode == 0, done.stderr
        yield root


@pytest.fixture(scope="module")
def one(root: Path) -> dict:
    """The single-process result every distributed run is compared with."""
    from flywheel.steps.context import make_context
    from flywheel.steps.execute import run_step

    with mlp_only(root, nproc=1):  # the baseline in this process: one torch import fewer
        run_step("train", make_context(None))
    return mlp_row(root)


def two_nodes(root: Path, logs: Path, dies: bool = False) -> list[tuple[int, str]]:
    """`flywheel step train` under two torchrun agents, one per "node", meeting at a c10d
    rendezvous on loopback, as the Kubernetes training Job starts it; (exit code, output) each.
    The rendezvous, not the order of start, gives each node its rank."""
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = []
    for node in (0, 1):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2",
                   "--nproc-per-node=1", "--rdzv-backend=c10d",
                   f"--rdzv-endpoint={endpoint}", "--rdzv-id=flywheel-test", "--max-restarts=0",
                   "-m", "flywheel.cli", "step", "train"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(logs)}
        if dies and node == 1:
            env["FLYWHEEL_TEST_NODE_DIES"] = "1"
        log = (logs / f"node{node}.log").open("w")
        nodes.append(subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log,
                                      start_new_session=True))  # fmt: skip
    try:
        codes = [node.wait(timeout=NODE_TIMEOUT_S) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
    return [(code, (logs / f"node{i}.log").read_text()) for i, code in enumerate(codes)]


def test_two_nodes_under_torchrun_rendezvous_match_one_process(
    root: Path, one: dict, tmp_path: Path
) -> None:
    (tmp_path / "sitecustomize.py").write_text(NODE_DIES)  # inert: no node is told to die
    with mlp_only(root, nproc=1, ddp_timeout_s=30):  # the launcher's world size wins
        nodes = two_nodes(root, tmp_path)
    for code, log in nodes:
        assert code == 0, log
    # one rank 0 across both nodes; it alone trained as the writer and wrote the outputs
    assert sum("rank 0 of 2 (launcher)" in " ".join(log.split()) for _, log in nodes) == 1
    two = mlp_row(root)
    assert two["details"]["nproc"] == 2
    assert set(two) == set(one) and set(two["details"]) == set(one["details"])
    for metric in ("roc_auc", "log_loss"):
        assert two["valid"][metric] == pytest.approx(one["valid"][metric], abs=0.01)
    assert (root / "artifacts/train" / two["details"]["checkpoint"]).is_file()
    assert not list(root.glob("artifacts/.train.*"))


def test_a_node_that_dies_fails_the_other_without_a_hang(
    root: Path, one: dict, tmp_path: Path
) -> None:
    model = root / "artifacts/train/model.pkl"  # from `one`, if not from the test before
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    (tmp_path / "sitecustomize.py").write_text(NODE_DIES)

    with mlp_only(root, nproc=1, ddp_timeout_s=30):
        (survivor, survivor_log), (dead, _) = two_nodes(root, tmp_path, dies=True)

    assert dead == -signal.SIGKILL
    # The survivor fails, bounded by NODE_TIMEOUT_S: its rank's collective reports the lost
    # peer (one `error: train.mlp: rank0 of 2 failed: ...` line), or, when the dead node held
    # the rendezvous store, its torchrun agent stops the rank itself.
    assert survivor != 0, survivor_log
    # nothing half-replaced; a staging folder a stopped rank left is the next writer's to clear
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before


def test_two_gloo_ranks_match_one_process(root: Path, one: dict) -> None:
    ddp = train(root, nproc=2)
    assert ddp.returncode == 0, ddp.stderr
    two = mlp_row(root)

    assert one["details"]["nproc"] == 1 and two["details"]["nproc"] == 2
    assert set(two) == set(one) and set(two["details"]) == set(one["details"])
    assert two["details"]["best_epoch"] <= two["details"]["epochs_run"] <= EPOCHS
    # Same seed, same global batch: different shuffles and dropout draws, the same model.
    for metric in ("roc_auc", "log_loss"):
        assert two["valid"][metric] == pytest.approx(one["valid"][metric], abs=0.01)
    # rank 0 wrote one checkpoint, and the pickled model evaluate loads comes from it
    assert (root / "artifacts/train" / two["details"]["checkpoint"]).is_file()
    from flywheel.model import load_model

    model = load_model(root / "artifacts/train/model.pkl")
    assert model.candidate == "mlp"


def test_a_failing_rank_fails_the_step_cleanly(root: Path, tmp_path: Path) -> None:
    model = root / "artifacts/train/model.pkl"
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    (tmp_path / "sitecustomize.py").write_text(FAILING_RANK)

    failed = train(root, nproc=2, env={"PYTHONPATH": str(tmp_path)}, ddp_timeout_s=30)

    assert failed.returncode == TrainingFailed.exit_code, failed.stderr
    error = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert error == [
        "error: train.mlp: rank1 of 2 failed: RuntimeError: injected failure on rank 1"
    ]
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before  # nothing half-replaced
    assert not list(root.glob("artifacts/.train.*"))  # no staging folder left behind


def test_batch_size_must_split_over_ranks(root: Path) -> None:
    failed = train(root, nproc=3)  # 256 rows do not split over 3 ranks
    assert failed.returncode == 2
    assert "train.mlp: Value error, batch_size 256 must be a multiple of nproc 3" in failed.stderr
