"""The MLP on several processes with PyTorch DistributedDataParallel, under torchrun.

Two ways in, both through `fit_distributed`. On one machine, `train.mlp.nproc` above 1 makes
`_launch` write the matrices to a scratch folder and run `python -m torch.distributed.run
--standalone` on this module. On several nodes, an external torchrun (rendezvous settings, as the
Kubernetes training Job runs it) starts `flywheel step train` once per GPU, and each of those
processes trains as the rank the launcher's environment names (`flywheel.training.launcher`).
Either way each rank joins the process group (NCCL on GPUs, gloo on CPU), runs the same `fit_mlp`
loop on its shard with a `Group`, and rank 0 alone writes the checkpoint and the outputs, so
evaluate and promote see the same result as from one process. Every wait is bounded: torchrun
stops all ranks when one dies, and the collectives time out after `train.mlp.ddp_timeout_s`.
The CNN (`cnn_distributed.py`) goes through the same `run_torchrun`, `joined` and error files.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from flywheel import errors
from flywheel.data.task import Task
from flywheel.errors import ConfigError, FlywheelError, TrainingFailed
from flywheel.training.ranks import Group

if TYPE_CHECKING:
    from flywheel.config import MLPParams
    from flywheel.training.device import DeviceChoice
    from flywheel.training.mlp import MLPFit

log = logging.getLogger(__name__)

DETAILS_NAME = "details.json"
# X_train, y_train, X_valid, y_valid, in the order fit_mlp takes them
Matrices = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]




def fit_distributed(
    params: MLPParams,
    seed: int,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    checkpoint_dir: Path,
    progress: Callable[[str], None] | None = None,
    task: Task | None = None,
) -> MLPFit | None:
    """The fit on several ranks, or None when this process trains alone.

    A launcher's world size wins over `train.mlp.nproc`: a rank never starts a torchrun.
    `task` (binary when None) travels to every rank, which builds the same head.
    """
    from flywheel.training.launcher import launched_rank

    arrays: Matrices = (X_train, y_train, X_valid, y_valid)
    launched = launched_rank()
    if launched is not None:
        return _fit_as_rank(
            params, seed, arrays, checkpoint_dir, progress, launched.world_size, task
        )
    if params.nproc > 1:
        return _launch(params, seed, arrays, checkpoint_dir, progress, task)
    return None


def _fit_as_rank(
    params: MLPParams,
    seed: int,
    arrays: Matrices,
    checkpoint_dir: Path,
    progress: Callable[[str], None] | None,
    world_size: int,
    task: Task | None = None,
) -> MLPFit:
    """This process as one rank of an external launcher's job; a failure names the rank."""
    from flywheel.training.mlp import fit_mlp

    if params.batch_size % world_size:
        raise ConfigError(
            f"train.mlp.batch_size {params.batch_size} must be a multiple of the launcher's "
            f"WORLD_SIZE {world_size}"
        )
    with joined(params.device, params.ddp_timeout_s) as (group, choice):
        if group.is_main:
            (progress or _say)(f"mlp: DistributedDataParallel, rank 0 of {world_size} (launcher)")
        try:
            return fit_mlp(
                params, seed, *arrays, checkpoint_dir, progress, choice=choice, group=group,
                task=task,
            )
        except FlywheelError:
            raise
        except Exception as exc:
            failure = _failure(exc)
            raise TrainingFailed(
                f"train.mlp: rank{group.rank} of {world_size} failed: "
                f"{failure['type']}: {failure['message']}"
            ) from exc


@contextmanager
def joined(device: str, timeout_s: float) -> Iterator[tuple[Group, DeviceChoice]]:
    """Join the launcher's process group as the rank its environment names, for the block.

    `device` is the model's `device` param; the collectives give up after `timeout_s`."""
    import torch.distributed as dist

    from flywheel.training.device import choose_device

    choice = choose_device(device)
    backend = "nccl" if choice.device == "cuda" else "gloo"
    group = Group(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ["LOCAL_RANK"]),
        backend=backend,
    )
    if backend == "nccl":
        torch.cuda.set_device(group.local_rank)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    try:
        yield group, choice
    finally:
        dist.destroy_process_group()


def _launch(
    params: MLPParams,
    seed: int,
    arrays: Matrices,
    checkpoint_dir: Path,
    progress: Callable[[str], None] | None,
    task: Task | None = None,
) -> MLPFit:
    """Run the fit on `params.nproc` local ranks under torchrun and return rank 0's result."""
    from flywheel.training.mlp import CHECKPOINT_NAME, MLPFit, load_checkpoint

    check_devices(params.nproc, params.device, "train.mlp")
    say = progress or (lambda _msg: None)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flywheel-ddp-") as scratch:
        job = Path(scratch)
        names = ("X_train", "y_train", "X_valid", "y_valid")
        matrices: dict[str, Any] = {
            k: np.asarray(v, dtype=np.float32) for k, v in zip(names, arrays, strict=True)
        }
        np.savez(job / "data.npz", **matrices)
        (job / "job.json").write_text(
            json.dumps(
                {
                    "params": params.model_dump(),
                    "seed": seed,
                    "checkpoint_dir": str(checkpoint_dir.resolve()),
                    "task": [task.kind, list(task.classes)] if task else None,
                }
            )
        )
        details = run_torchrun("flywheel.training.distributed", job, params.nproc, "train.mlp", say)
    estimator, _ = load_checkpoint(checkpoint_dir / CHECKPOINT_NAME)
    return MLPFit(estimator, details)


def run_torchrun(
    module: str, job: Path, nproc: int, section: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """`python -m module job` on `nproc` local ranks under torchrun; rank 0's details.

    Every model's local DDP goes through here: `module` is the one whose `__main__` trains one
    rank from the job folder and has rank 0 write `details.json` there; `section` (the params
    section, e.g. train.cnn) names the model in errors.
    """
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
        "-m",
        module,
        str(job),
    ]
    say(f"{section.removeprefix('train.')}: DistributedDataParallel on {nproc} processes "
        "(torchrun)")
    # One intra-op thread per rank unless the user chose: ranks already fill the cores.
    env = {"OMP_NUM_THREADS": "1", **os.environ}
    returncode = subprocess.run(command, check=False, env=env).returncode
    if returncode != 0:
        raise _rank_error(job, nproc, returncode, section)
    return json.loads((job / DETAILS_NAME).read_text())  # type: ignore[no-any-return]


def check_devices(nproc: int, device: str, section: str) -> None:
    """On CUDA, one GPU per rank: more ranks than visible GPUs is a config error."""
    from flywheel.training.device import choose_device

    if choose_device(device).device != "cuda":
        return
    visible = torch.cuda.device_count()
    if nproc > visible:
        raise ConfigError(
            f"{section}.nproc is {nproc} but {visible} CUDA device(s) are "
            "visible; lower nproc or set device: cpu"
        )


@contextmanager
def reporting_failure(job: Path, rank: int) -> Iterator[None]:
    """A rank's exception, also written to the job folder for the launching process to raise."""
    try:
        yield
    except BaseException as exc:
        (job / f"rank{rank}.error").write_text(json.dumps(_failure(exc)))
        raise


def _rank_error(job: Path, nproc: int, returncode: int, section: str) -> FlywheelError:
    """The first failing rank's own error, as the error class it raised when it was ours.

    The first one written is the cause; the others are ranks that lost their peer after it.
    """
    for path in sorted(job.glob("rank*.error"), key=lambda p: p.stat().st_mtime_ns):
        failure = json.loads(path.read_text())
        kind = getattr(errors, failure["type"], None)
        if isinstance(kind, type) and issubclass(kind, FlywheelError):
            return kind(failure["message"])
        return TrainingFailed(
            f"{section}: {path.stem} of {nproc} failed: {failure['type']}: {failure['message']}"
        )
    return TrainingFailed(
        f"{section}: distributed training on {nproc} processes exited with "
        f"{returncode} before a rank reported an error (see the log above)"
    )


def _run_rank(job: Path) -> None:
    """One rank of `_launch`: fit on this rank's shard, rank 0 writes the details."""
    from flywheel.config import MLPParams
    from flywheel.training.mlp import fit_mlp

    spec = json.loads((job / "job.json").read_text())
    params = MLPParams.model_validate(spec["params"])
    task = Task(spec["task"][0], tuple(spec["task"][1])) if spec.get("task") else None
    with (
        joined(params.device, params.ddp_timeout_s) as (group, choice),
        reporting_failure(job, group.rank),
    ):
        data = np.load(job / "data.npz")
        fit = fit_mlp(
            params,
            spec["seed"],
            data["X_train"],
            data["y_train"],
            data["X_valid"],
            data["y_valid"],
            Path(spec["checkpoint_dir"]),
            progress=_say,
            choice=choice,
            group=group,
            task=task,
        )
        if group.is_main:
            (job / DETAILS_NAME).write_text(json.dumps(fit.details))


def _failure(exc: BaseException) -> dict[str, Any]:
    """The exception's type and first line: what the step's one error line says."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return {"type": type(exc).__name__, "message": message}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    from flywheel.training.distributed import _run_rank as run_rank  # the importable module's

    run_rank(Path(sys.argv[1]))
