"""What the steps read of each other's outputs: the split files, the encodings, the labels.

One place names the files featurize and train write, so evaluate, promote and `flywheel promote
--version` read them alike; the pickles among them only through their seals (steps/sealed.py).
"""

from __future__ import annotations

import pickle
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from flywheel.config import Params
from flywheel.data.task import Task
from flywheel.errors import DataError
from flywheel.steps.context import StepContext
from flywheel.steps.sealed import read_sealed

if TYPE_CHECKING:
    from flywheel.model import Model

TARGET = "__target__"  # the encoded target (class code or number) in the split files
ENCODINGS_FILE = "encodings.pkl"  # featurize's fitted encodings, by name (features/encoding.py)
SPLIT_RULE_FILE = "split_rule.json"  # how featurize split (features/split.py), for lineage
TEST_KEYS_FILE = "test_keys.parquet"  # the test rows' id (and split_by) columns, row-aligned
MODEL_FILE = "model.pkl"  # train's model (flywheel.model.Model)
FEATURIZE, TRAIN = "flywheel step featurize", "flywheel step train"  # what rewrites each


def model_path(ctx: StepContext) -> Path:
    return ctx.out("train") / MODEL_FILE


def read_model(ctx: StepContext) -> Model:
    """train's model, unpickled only once its seal vouches for the file (steps/sealed.py)."""
    from flywheel.model import model_from_bytes

    path = model_path(ctx)
    return model_from_bytes(read_sealed(path, ctx.settings.signing_key, TRAIN), path)


def read_split(ctx: StepContext, name: str) -> pd.DataFrame:
    """One split featurize wrote; a missing one names the command that makes it."""
    path = ctx.out("featurize") / f"{name}.parquet"
    if not path.is_file():
        raise DataError(
            f"{path}: no {name} split; run `flywheel step featurize` (or `dvc repro featurize`)"
        )
    return pd.read_parquet(path)


def judging_params(ctx: StepContext) -> Params:
    """params.yaml with `evaluate` as this dataset reads it (`ctx.evaluate_params`: only the
    slice columns its spec has): the gate judges the slices evaluate reported, and another
    table than the default one has none of the default table's slice columns."""
    return ctx.params.model_copy(update={"evaluate": ctx.evaluate_params})


def train_prior(ctx: StepContext, task: Task) -> float | np.ndarray:
    """What the prior baseline answers, from the training split's label column only: the
    positive share (binary), each class's share (multiclass) or the mean (regression)."""
    labels = pd.read_parquet(ctx.out("featurize") / "train.parquet", columns=[TARGET])[TARGET]
    if task.kind == "multiclass":
        counts = np.bincount(labels.to_numpy(dtype="int64"), minlength=len(task.classes))
        return counts / counts.sum()
    return float(labels.mean())


def training_inputs(
    ctx: StepContext, kinds: Collection[str]
) -> tuple[dict[str, Any], dict[str, Any], np.ndarray, np.ndarray]:
    """Each needed encoding's train/valid matrices, the encodings, and the two label vectors.

    The test split waits for evaluate; the split frames are dropped once encoded, so training
    holds only float32 matrices.
    """
    from flywheel.training.candidates import Matrices

    folder = ctx.out("featurize")
    sealed = read_sealed(folder / ENCODINGS_FILE, ctx.settings.signing_key, FEATURIZE)
    encodings = pickle.loads(sealed)  # featurize's own: its seal was checked first
    train, valid = (pd.read_parquet(folder / f"{name}.parquet") for name in ("train", "valid"))
    inputs = {
        kind: Matrices(
            encodings[kind].transform(train),
            encodings[kind].transform(valid),
            encodings[kind].categorical_columns,
        )
        for kind in sorted(kinds)
    }
    return inputs, encodings, train[TARGET].to_numpy(), valid[TARGET].to_numpy()


def decoded_split(ctx: StepContext, name: str) -> tuple[np.ndarray, np.ndarray]:
    """An image dataset's split as the networks take it: pixels (n, C, H, W) in [0, 1], decoded
    through `images/decode.py` as serving will, and the class codes."""
    from flywheel.images.decode import decode_image, to_batch
    from flywheel.images.folder import IMAGE_BYTES_COLUMN, PATH_COLUMN

    image = ctx.spec.image
    assert image is not None
    frame = read_split(ctx, name)
    decoded = [decode_image(bytes(data), image, path)
               for data, path in zip(frame[IMAGE_BYTES_COLUMN], frame[PATH_COLUMN], strict=True)]
    return to_batch(decoded), frame[TARGET].to_numpy()
