"""The image contract every door decodes through: what is read, what is refused, in one line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from flywheel.data.image_spec import ImageSpec
from flywheel.data.spec import DatasetSpec
from flywheel.errors import DataError
from flywheel.images.decode import decode_image, to_batch
from flywheel.images.model import IMAGE_COLUMN, ImageModel
from flywheel.images.stats import image_stats, stat_features
from flywheel.model import model_bytes, model_from_bytes

GREY = ImageSpec(width=4, height=2, mode="L")


def png(pixels: np.ndarray, mode: str = "L", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode=mode).save(buffer, format=fmt)
    return buffer.getvalue()


def grey(value: int = 0) -> np.ndarray:
    return np.full((2, 4), value, dtype=np.uint8)


def test_a_png_of_the_spec_s_size_decodes_to_its_pixels() -> None:
    pixels = np.arange(8, dtype=np.uint8).reshape(2, 4) * 30
    decoded = decode_image(png(pixels), GREY, "a.png")
    assert decoded.pixels.shape == (2, 4, 1)
    assert (decoded.pixels[:, :, 0] == pixels).all()
    assert (decoded.width, decoded.height, decoded.channels) == (4, 2, 1)


@pytest.mark.parametrize("data, reason", [
    (b"label,value\n1,2\n", "not a readable PNG or JPEG"),
    (png(grey())[:-20], "not a readable PNG or JPEG"),
    (png(np.zeros((3, 4))), "4x3 pixels, expected 4x2"),
    (png(np.zeros((2, 4, 3)), mode="RGB"), "mode RGB, expected L"),
])
def test_what_is_not_the_spec_s_image_is_one_line_naming_the_file(data: bytes,
                                                                   reason: str) -> None:
    with pytest.raises(DataError) as err:
        decode_image(data, GREY, "digits/3/x.png")
    assert str(err.value).startswith("digits/3/x.png: ")
    assert reason in str(err.value)
    assert "\n" not in str(err.value)


def test_a_file_over_max_bytes_is_refused_before_it_is_decoded() -> None:
    spec = GREY.model_copy(update={"max_bytes": 10})
    with pytest.raises(DataError, match="more than image.max_bytes 10"):
        decode_image(png(grey()), spec, "big.png")


def test_a_decompression_bomb_is_refused_by_its_header() -> None:
    huge = png(np.zeros((4100, 4200), dtype=np.uint8))
    with pytest.raises(DataError, match="4200x4100 pixels, more than this spec accepts"):
        decode_image(huge, GREY.model_copy(update={"resize": "fit"}), "bomb.png")


def test_fit_resizes_and_converts_to_the_spec() -> None:
    colour = np.full((6, 8, 3), 200, dtype=np.uint8)
    decoded = decode_image(png(colour, mode="RGB", fmt="JPEG"),
                           GREY.model_copy(update={"resize": "fit"}), "c.jpg")
    assert decoded.pixels.shape == (2, 4, 1)
    assert (decoded.width, decoded.height, decoded.channels) == (8, 6, 3)
    assert abs(int(decoded.pixels.mean()) - 200) <= 2


def test_stats_by_hand() -> None:
    pixels = np.array([[0, 0, 255, 255], [0, 0, 255, 255]], dtype=np.uint8)
    data = png(pixels)
    stats = image_stats(decode_image(data, GREY, "s.png"))
    assert stats == {"width": 4.0, "height": 2.0, "channels": 1.0, "mean_intensity": 127.5,
                     "std_intensity": 127.5, "bytes": float(len(data))}


def test_a_batch_is_n_channels_height_width_in_0_1() -> None:
    decoded = [decode_image(png(grey(255)), GREY, "w.png"),
               decode_image(png(grey(0)), GREY, "b.png")]
    batch = to_batch(decoded)
    assert batch.shape == (2, 1, 2, 4) and batch.dtype == np.float32
    assert batch[0].min() == 1.0 and batch[1].max() == 0.0


class Brightness:
    """Class 2 ("light") for bright images, class 0 ("dark") for dark ones."""

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        light = batch.mean(axis=(1, 2, 3))
        return np.stack([1 - light, np.zeros_like(light), light], axis=1)


def test_an_image_model_answers_like_a_table_model_and_pickles() -> None:
    spec = DatasetSpec(name="shades", path=Path("data/shades"), target="label",
                       task="multiclass", classes=["dark", "grey", "light"],
                       features=stat_features(), image=GREY)
    model = ImageModel(spec=spec, network=Brightness(), candidate="brightness")
    frame = pd.DataFrame({IMAGE_COLUMN: [png(grey(250)), png(grey(5))]}, index=[7, 8])
    answer = model.predict(frame)
    assert list(answer["prediction"]) == ["light", "dark"]
    assert list(answer.index) == [7, 8]
    assert list(answer.columns) == model.task.output_columns
    again = model_from_bytes(model_bytes(model), Path("model.pkl"))
    assert isinstance(again, ImageModel)
    assert again.embed(model.decode(frame)).shape == (2, 2 * 4)  # 1 channel, cells of 1 pixel


def test_an_image_spec_is_for_classification() -> None:
    with pytest.raises(ValueError, match="an image dataset is classification"):
        DatasetSpec(name="x", path=Path("data/x"), target="label", task="regression",
                    features=stat_features(), image=GREY)
