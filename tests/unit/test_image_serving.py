"""Image serving's small rules, by hand: the embedding summary, the body limit, who may send a
form, how a loaded image model presents itself, and a table <-> image swap."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from flywheel.data.image_spec import ImageSpec
from flywheel.data.spec import DatasetSpec
from flywheel.images.model import ImageModel
from flywheel.images.monitored import (
    EMBEDDING_COLUMNS,
    PROJECTION_SEED,
    embedding_summary,
    monitored_frame,
    monitored_spec,
)
from flywheel.images.stats import STAT_COLUMNS, stat_features

SPEC = DatasetSpec(name="shades", path=Path("data/shades"), target="label", task="multiclass",
                   classes=["dark", "grey", "light"], features=stat_features(),
                   image=ImageSpec(width=4, height=2, mode="L"))


class Brightness:
    """Dark, grey or light by mean pixel; its embedding is (mean, 2 x mean)."""

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        level = np.clip((batch.mean(axis=(1, 2, 3)) * 3).astype(int), 0, 2)
        return np.eye(3)[level]

    def embed(self, batch: np.ndarray) -> np.ndarray:
        mean = batch.mean(axis=(1, 2, 3))
        return np.column_stack([mean, 2 * mean])


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((2, 4), value, dtype=np.uint8), mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def test_embedding_summary_is_the_norm_then_fixed_projections() -> None:
    embedding = np.array([[3.0, 4.0], [0.0, 0.0]])
    summary = embedding_summary(embedding)
    directions = np.random.default_rng(PROJECTION_SEED).standard_normal((2, 4)) / np.sqrt(2)
    assert summary.shape == (2, len(EMBEDDING_COLUMNS))
    assert summary[0, 0] == pytest.approx(5.0) and summary[1, 0] == 0.0
    assert summary[0, 1:] == pytest.approx([3, 4] @ directions)
    assert (summary[1, 1:] == 0).all()
    wide = embedding_summary(np.ones((1, 512)))  # any width: the same columns
    assert wide.shape == (1, len(EMBEDDING_COLUMNS)) and wide[0, 0] == pytest.approx(np.sqrt(512))


def test_monitored_rows_are_statistics_and_embedding_of_each_image() -> None:
    model = ImageModel(spec=SPEC, network=Brightness(), candidate="brightness")
    decoded = model.decode(pd.DataFrame({"image": [png(255), png(51)]}))
    frame = monitored_frame(model, decoded)
    assert list(frame.columns) == [*STAT_COLUMNS, *EMBEDDING_COLUMNS]
    assert frame["mean_intensity"].tolist() == [255.0, 51.0]
    # embedding (m, 2m) with m = mean / 255: its norm is m * sqrt(5)
    assert frame["embedding_norm"].tolist() == pytest.approx([np.sqrt(5), 0.2 * np.sqrt(5)])
    assert [f.name for f in monitored_spec(SPEC).features] == list(frame.columns)


def test_the_body_limit_fits_one_largest_image_in_either_encoding() -> None:
    from flywheel.serving.image_request import FORM_OVERHEAD_BYTES, body_limit

    assert body_limit(20_000, 1_048_576) == 1_048_576
    assert body_limit(5_000_000, 1_048_576) == 6_666_666 + FORM_OVERHEAD_BYTES


@pytest.mark.parametrize("path, content_type, accepted", [
    ("/predict_image", b"multipart/form-data; boundary=x", True),
    ("/predict_image", b"application/json", True),
    ("/predict_image", b"text/plain", False),
    ("/predict", b"multipart/form-data; boundary=x", False),
    ("/feedback", b"multipart/form-data; boundary=x", False),
])
def test_only_the_upload_route_takes_a_form(path: str, content_type: bytes,
                                            accepted: bool) -> None:
    from flywheel.serving.guard import SCOPE_BY_PATH, declares_accepted

    assert declares_accepted(path, content_type) is accepted
    assert SCOPE_BY_PATH["/predict_image"] == SCOPE_BY_PATH["/predict"]  # same token


class _Wrapped:
    def __init__(self, model: Any) -> None:
        self.model = model


class _Pyfunc:
    def __init__(self, model: Any) -> None:
        self.inner = _Wrapped(model)

    def unwrap_python_model(self) -> Any:
        return self.inner


def test_a_loaded_image_model_presents_its_logged_columns_and_its_own_predict() -> None:
    from flywheel.serving.registry_watch import LoadedModel

    image = ImageModel(spec=SPEC, network=Brightness(), candidate="brightness")
    loaded = LoadedModel(pyfunc=_Pyfunc(image), name="shades", version="1")
    assert loaded.image_model is image
    assert loaded.spec == monitored_spec(SPEC)
    assert loaded.predict(pd.DataFrame({"image": [png(250)]}))["prediction"].tolist() == ["light"]


def test_a_table_to_image_swap_is_a_schema_change_refused_under_refuse() -> None:
    from flywheel.serving.request_schema import SchemaRefused
    from flywheel.serving.schema_swap import SchemaSwap
    from tests.unit.test_schema_swap import default_spec, model

    table = default_spec()
    swap = SchemaSwap(table, 1000, "refuse")
    serving = swap.prepare(model("1", table), None)
    with pytest.raises(SchemaRefused, match="takes other request fields"):
        swap.prepare(model("2", monitored_spec(SPEC)), serving)
    swapped = SchemaSwap(table, 1000, "swap").prepare(model("2", monitored_spec(SPEC)), serving)
    assert swapped.request_schema is not None
    assert "embedding_norm" in swapped.request_schema.fields
