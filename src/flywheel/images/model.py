"""The trained image classifier: the spec's decoding and a network in one object.

It answers exactly like a table's model (`scores`, `predict`: `Task.output_columns`), from a
frame whose `image` column holds each image's encoded bytes (PNG or JPEG, as a file or an
upload holds them), so evaluation, the gate, the registry, serving and `flywheel predict` treat
both alike. Decoding goes through `images/decode.py` at every door.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from flywheel.data.answers import answer_frame
from flywheel.data.image_spec import ImageSpec
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import Task, task_of
from flywheel.images.decode import Decoded, decode_image, to_batch

IMAGE_COLUMN = "image"  # the frame column holding each image's encoded bytes
# Without a network embedding, drift compares images downsampled to this many pixels a side.
FALLBACK_EMBEDDING_SIDE = 4


class ImageNetwork(Protocol):
    """A fitted image classifier over `decode.to_batch` input: float32 (n, channels, height,
    width) in [0, 1]. `predict_proba` answers (n, classes) in the task's class order."""

    def predict_proba(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass
class ImageModel:
    spec: DatasetSpec  # `spec.image` is set
    network: Any  # an `ImageNetwork`; may also offer `embed(batch) -> (n, d)`
    candidate: str
    threshold: float = 0.5  # two classes only: the second class's probability that predicts it
    params: dict[str, Any] = field(default_factory=dict)
    valid_metrics: dict[str, float] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    @property
    def task(self) -> Task:
        return task_of(self.spec)

    @property
    def image(self) -> ImageSpec:
        assert self.spec.image is not None  # checked when the model is built
        return self.spec.image

    def decode(self, frame: pd.DataFrame) -> list[Decoded]:
        """Each row's image; a row that does not decode raises `DataError` naming its index."""
        return [decode_image(bytes(data), self.image, f"image {index}")
                for index, data in frame[IMAGE_COLUMN].items()]

    def scores_of(self, decoded: list[Decoded]) -> np.ndarray:
        """Class probabilities (n, classes) for images already decoded."""
        return np.asarray(self.network.predict_proba(to_batch(decoded)), dtype="float64")

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.scores_of(self.decode(frame))

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return answer_frame(self.task, self.scores(frame), self.threshold, frame.index)

    def embed(self, decoded: list[Decoded]) -> np.ndarray:
        """What drift compares besides the statistics: the network's penultimate layer when it
        has one, else the images downsampled to a few pixels."""
        batch = to_batch(decoded)
        if hasattr(self.network, "embed"):
            return np.asarray(self.network.embed(batch), dtype="float64")
        n, channels, height, width = batch.shape
        side = FALLBACK_EMBEDDING_SIDE
        rows = np.array_split(np.arange(height), min(side, height))
        cols = np.array_split(np.arange(width), min(side, width))
        cells = [batch[:, :, r][:, :, :, c].mean(axis=(2, 3)) for r in rows for c in cols]
        return np.concatenate(cells, axis=1).astype("float64").reshape(n, -1)
