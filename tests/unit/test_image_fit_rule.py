"""`resize: fit`'s declared rule on files a folder of photos holds (transparency, palettes, a
large JPEG) and the working size an inferred spec records, each on tiny real files with the
values worked out by hand."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flywheel.data.image_spec import ImageSpec
from flywheel.images.decode import decode_image
from flywheel.images.infer import WORKING_SIDE, infer_image_spec

RGB_FIT = ImageSpec(width=2, height=1, mode="RGB", resize="fit")


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("background, shade", [("white", 255), ("black", 0)])
def test_a_transparent_pixel_is_laid_over_the_background(background: str, shade: int) -> None:
    # Transparent black (as many editors store it), then opaque grey 100.
    rgba = np.array([[[0, 0, 0, 0], [100, 100, 100, 255]]], dtype=np.uint8)
    spec = RGB_FIT.model_copy(update={"background": background})
    decoded = decode_image(encoded(Image.fromarray(rgba, mode="RGBA")), spec, "a.png")
    assert decoded.pixels[0, 0].tolist() == [shade] * 3
    assert decoded.pixels[0, 1].tolist() == [100] * 3
    assert decoded.channels == 4  # the file's, not the network's


def test_half_transparent_black_over_white_is_mid_grey() -> None:
    # 0 * 128/255 + 255 * (1 - 128/255) = 127
    rgba = np.array([[[0, 0, 0, 128], [0, 0, 0, 128]]], dtype=np.uint8)
    decoded = decode_image(encoded(Image.fromarray(rgba, mode="RGBA")), RGB_FIT, "h.png")
    assert np.abs(decoded.pixels.astype(int) - 127).max() <= 1


def test_a_palette_s_transparent_entry_is_the_background_too() -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    data = encoded(palette, transparency=0)
    decoded = decode_image(data, RGB_FIT, "p.png")
    assert decoded.pixels[0].tolist() == [[255, 255, 255], [200, 100, 50]]


def test_a_large_jpeg_shrinks_to_the_working_size_and_reports_its_own() -> None:
    photo = Image.new("RGB", (2000, 1000), (200, 60, 20))
    data = encoded(photo, "JPEG", quality=95)
    decoded = decode_image(data, ImageSpec(width=64, height=32, mode="RGB", resize="fit"),
                           "photo.jpg")
    assert decoded.pixels.shape == (32, 64, 3)
    assert (decoded.width, decoded.height, decoded.channels) == (2000, 1000, 3)
    assert np.abs(decoded.pixels.mean(axis=(0, 1)) - [200, 60, 20]).max() <= 3


def write(root: Path, sizes: dict[str, list[tuple[int, int]]], mode: str = "RGB") -> Path:
    for name, shapes in sizes.items():
        (root / name).mkdir(parents=True)
        for i, (width, height) in enumerate(shapes):
            image = Image.new(mode, (width, height), i * 40)
            (root / name / f"{i}.png").write_bytes(encoded(image))
    return root


def test_a_uniform_folder_of_large_images_trains_at_the_working_size(tmp_path: Path) -> None:
    root = write(tmp_path / "photos", {"cat": [(200, 100)] * 2, "dog": [(200, 100)] * 2})
    image = infer_image_spec(root, path=root, name="photos").image
    assert image is not None and WORKING_SIDE == 64
    assert (image.width, image.height, image.resize) == (64, 32, "fit")  # 200x100 * 64/200


def test_assorted_sizes_take_the_median_width_and_height(tmp_path: Path) -> None:
    # widths 40, 50, 60, 60, 44 -> median 50; heights 40, 50, 30, 60, 44 -> median 44
    root = write(tmp_path / "mixed", {"a": [(40, 40), (50, 50), (60, 30)],
                                      "b": [(60, 60), (44, 44)]})
    image = infer_image_spec(root, path=root, name="mixed").image
    assert image is not None
    assert (image.width, image.height, image.mode, image.resize) == (50, 44, "RGB", "fit")


def test_a_spec_pickled_before_background_existed_lays_over_white() -> None:
    old = RGB_FIT.model_copy()
    state = old.__getstate__()
    del state["__dict__"]["background"]  # what a model registered before the field holds
    again = ImageSpec.__new__(ImageSpec)
    again.__setstate__(state)
    assert again.background == "white"
    assert pickle.loads(pickle.dumps(again)) == RGB_FIT


def test_an_image_folder_s_suite_holds_it_to_the_image_rules_not_the_table_bounds() -> None:
    from flywheel.config import load_params
    from flywheel.data.spec import DatasetSpec
    from flywheel.images.stats import stat_features
    from flywheel.validation.suite import build_suite

    classes = [f"class_{i}" for i in range(20)]
    spec = DatasetSpec(name="pets", path=Path("data/pets"), target="label", task="multiclass",
                       classes=classes, features=stat_features(),
                       image=RGB_FIT.model_copy(update={"min_per_class": 10,
                                                        "max_imbalance": 4.0}))
    table = load_params(Path("params.yaml")).validate_
    assert (table.min_rows, table.min_class_fraction) == (500, 0.05)  # a table's bounds
    suite = build_suite(spec, table)
    checks = {(e.meta["check"], e.meta.get("cls")): e for e in suite.expectations}
    assert checks[("row_count", None)].min_value == 200  # 10 a class x 20 classes
    # the smallest class beside 19 four times its size: 1 / (1 + 19 x 4) = 1 / 77
    assert checks[("class_balance", "class_3")].mostly == pytest.approx(1 / 77)
