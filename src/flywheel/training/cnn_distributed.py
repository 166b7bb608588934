"""The CNN on several processes with DistributedDataParallel, through the MLP's launcher.

The same two ways in as the MLP (distributed.py): `train.cnn.nproc` above 1 writes the decoded
images to a scratch folder and runs this module on that many local ranks with
`distributed.run_torchrun`; a process an external torchrun started (the Kubernetes GPU Job)
trains as the rank its environment names. Each rank runs `fit_cnn` with its `Group`, and
rank 0 alone writes the checkpoint (and, under `flywheel step train`, the step's outputs).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.config import CNNParams
from flywheel.errors import ConfigError, FlywheelError, TrainingFailed
from flywheel.training.cnn import CHECKPOINT_NAME, CNNClassifier, fit_cnn, load_checkpoint
from flywheel.training.distributed import (
    DETAILS_NAME,
    check_devices,
    joined,
    reporting_failure,
    run_torchrun,
)
from flywheel.training.launcher import launched_rank

Images = tuple[np.ndarray, np.ndarray]  # to_batch pixels (n, C, H, W), class codes (n,)
Fitted = tuple[CNNClassifier, dict[str, Any]]
SECTION = "train.cnn"
RANK_MODULE = "flywheel.training.cnn_distributed"  # what torchrun runs: `run_rank` per rank


def fit_cnn_distributed(
    params: CNNParams, seed: int, train: Images, valid: Images, classes: int,
    checkpoint_dir: Path, progress: Callable[[str], None],
) -> Fitted | None:
    """The fit on several ranks, or None when this process trains alone.

    A launcher's world size wins over `train.cnn.nproc`: a rank never starts a torchrun.
    """
    launched = launched_rank()
    if launched is not None:
        return _fit_as_rank(params, seed, (train, valid, classes), checkpoint_dir, progress)
    if params.nproc > 1:
        return _launch(params, seed, (train, valid, classes), checkpoint_dir, progress)
    return None


def _fit_as_rank(params: CNNParams, seed: int, data: tuple[Images, Images, int],
                 checkpoint_dir: Path, progress: Callable[[str], None]) -> Fitted:
    """This process as one rank of an external launcher's job; a failure names the rank."""
    with joined(params.device, params.ddp_timeout_s) as (group, _choice):
        if params.batch_size % group.world_size:
            raise ConfigError(f"{SECTION}.batch_size {params.batch_size} must be a multiple "
                                f"of the launcher's WORLD_SIZE {group.world_size}")
        if group.is_main:
            progress(f"cnn: DistributedDataParallel, rank 0 of {group.world_size} (launcher)")
        try:
            return fit_cnn(params, seed, *data, group=group, checkpoint_dir=checkpoint_dir)
        except FlywheelError:
            raise
        except Exception as exc:
            raise TrainingFailed(f"{SECTION}: rank{group.rank} of {group.world_size} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc


def _launch(params: CNNParams, seed: int, data: tuple[Images, Images, int],
            checkpoint_dir: Path, progress: Callable[[str], None]) -> Fitted:
    """Run the fit on `params.nproc` local ranks under torchrun; rank 0's network and details."""
    (x_train, y_train), (x_valid, y_valid), classes = data
    check_devices(params.nproc, params.device, SECTION)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flywheel-ddp-cnn-") as scratch:
        job = Path(scratch)
        np.savez(job / "data.npz", x_train=x_train, y_train=y_train, x_valid=x_valid,
                 y_valid=y_valid)
        (job / "job.json").write_text(json.dumps({
            "params": params.model_dump(), "seed": seed, "classes": classes,
            "checkpoint_dir": str(checkpoint_dir.resolve()),
        }))
        details = run_torchrun(RANK_MODULE, job, params.nproc, SECTION, progress)
    return load_checkpoint(checkpoint_dir / CHECKPOINT_NAME), details


def run_rank(job: Path) -> None:
    """One rank of `_launch`: fit on this rank's shard; rank 0 writes the details."""
    spec = json.loads((job / "job.json").read_text())
    params = CNNParams.model_validate(spec["params"])
    with (
        joined(params.device, params.ddp_timeout_s) as (group, _choice),
        reporting_failure(job, group.rank),
    ):
        data = np.load(job / "data.npz")
        _network, details = fit_cnn(
            params, spec["seed"], (data["x_train"], data["y_train"]),
            (data["x_valid"], data["y_valid"]), spec["classes"], group=group,
            checkpoint_dir=Path(spec["checkpoint_dir"]),
        )
        if group.is_main:
            (job / DETAILS_NAME).write_text(json.dumps(details))


if __name__ == "__main__":
    from flywheel.training.cnn_distributed import run_rank as rank_of_job  # the importable one

    rank_of_job(Path(sys.argv[1]))
