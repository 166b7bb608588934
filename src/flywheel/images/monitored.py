"""What the inference log and drift keep of an image: its statistics and an embedding summary.

Raw pixels are never logged (they are the user's data, and large); each image becomes a fixed
set of numeric columns instead: the per-image statistics (`images/stats.py`) and a summary of
the model's embedding (`ImageModel.embed`, the penultimate layer when the network has one).
The summary is the embedding's L2 norm and its projections on a few fixed random directions
(seeded, so every process and the reference profile project alike; random projections keep
distances between embeddings roughly, without fitting anything). The same rows feed the
reference profile built from held-out images and the live log, so drift compares like with
like. A fixed number of columns whatever the network: a changed embedding width changes the
directions, never the schema.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from flywheel.data.spec import DatasetSpec, FeatureSpec
from flywheel.images.decode import Decoded
from flywheel.images.model import ImageModel
from flywheel.images.stats import image_stats

PROJECTIONS = 4
PROJECTION_SEED = 22
EMBEDDING_NORM = "embedding_norm"
EMBEDDING_COLUMNS = (EMBEDDING_NORM, *(f"embedding_{i}" for i in range(PROJECTIONS)))


def monitored_spec(spec: DatasetSpec) -> DatasetSpec:
    """An image spec whose features are what each logged row holds (stats and embedding)."""
    kept = [f for f in spec.features if f.name not in EMBEDDING_COLUMNS]
    extra = [FeatureSpec(name=name, kind="numeric") for name in EMBEDDING_COLUMNS]
    return spec.model_copy(update={"features": [*kept, *extra]})


def embedding_summary(embedding: np.ndarray) -> np.ndarray:
    """(n, d) embeddings -> (n, 1 + PROJECTIONS): the norm, then the fixed projections."""
    matrix = np.asarray(embedding, dtype="float64").reshape(len(embedding), -1)
    width = matrix.shape[1]
    directions = np.random.default_rng(PROJECTION_SEED).standard_normal((width, PROJECTIONS))
    projected = matrix @ (directions / np.sqrt(width))
    return np.column_stack([np.linalg.norm(matrix, axis=1), projected])


def monitored_rows(model: ImageModel, decoded: list[Decoded]) -> list[dict[str, Any]]:
    """One logged row per image, in order: its statistics and its embedding summary."""
    summary = embedding_summary(model.embed(decoded))
    return [image_stats(image) | dict(zip(EMBEDDING_COLUMNS, map(float, values), strict=True))
            for image, values in zip(decoded, summary, strict=True)]


def monitored_frame(model: ImageModel, decoded: list[Decoded]) -> pd.DataFrame:
    """`monitored_rows` as a frame: what the reference profile is built from (held-out
    images, `monitoring.profile.build_profile(monitored_spec(spec), ...)`)."""
    return pd.DataFrame(monitored_rows(model, decoded))
