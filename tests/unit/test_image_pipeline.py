"""An image folder into the pipeline: the spec inferred from it, the content-hash split, the
example digits, the CNN's contract and the gallery of mistakes, each on tiny real files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from flywheel.config import CNNParams, FeaturizeParams
from flywheel.data.task import Task
from flywheel.errors import ConfigError, DataError
from flywheel.evaluation.gallery import gallery_html, worst_mistakes
from flywheel.features.split import assign, content_rule
from flywheel.images.folder import SHA_COLUMN, image_table
from flywheel.images.infer import infer_image_spec
from flywheel.images.mnist_example import write_mnist
from flywheel.model import model_bytes, model_from_bytes


def png(pixels: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def write_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (6, 4)) -> Path:
    """`count` distinct grey PNGs of `size` (width, height) per class."""
    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = np.full(size[::-1], (index * 50 + i * 3) % 256)
            (root / name / f"{i:03d}.png").write_bytes(png(pixels))
    return root


def test_the_spec_of_a_uniform_folder_holds_its_size_classes_and_task(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "shapes", {"circle": 3, "square": 3, "star": 4})
    spec = infer_image_spec(root, path=root, name="shapes")
    assert (spec.task, spec.classes, spec.target) == ("multiclass", ["circle", "square", "star"],
                                                      "label")
    assert spec.image is not None
    assert (spec.image.width, spec.image.height, spec.image.mode) == (6, 4, "L")
    assert spec.image.resize == "none"  # a uniform folder is held to its own size
    assert spec.feature_names == ["width", "height", "channels", "mean_intensity",
                                  "std_intensity", "bytes"]
    # majority share p = 0.4 of k = 3: macro-F1 2p / ((1 + p) k) = 0.1905, + 0.05
    assert spec.floors == {"macro_f1": pytest.approx(0.24, abs=0.001)}


def test_mixed_sizes_and_modes_take_the_median_size_and_resize_fit(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "pets", {"cat": 3, "dog": 2}, size=(8, 8))
    (root / "dog" / "odd.png").write_bytes(png(np.zeros((5, 7, 3)), mode="RGB"))
    (root / "dog" / "broken.png").write_bytes(b"not an image at all")  # left for validation
    spec = infer_image_spec(root, path=root, name="pets")
    assert spec.image is not None
    assert (spec.image.width, spec.image.height, spec.image.mode) == (8, 8, "L")
    assert spec.image.resize == "fit"
    assert (spec.task, spec.classes, spec.positive_class) == ("binary", ["cat", "dog"], "dog")


def test_a_task_that_does_not_fit_the_class_count_or_one_class_is_refused(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "pets", {"cat": 2, "dog": 2})
    with pytest.raises(ConfigError, match="2 class subfolders is a binary task"):
        infer_image_spec(root, path=root, name="pets", task="multiclass")
    lonely = write_folder(tmp_path / "one", {"cat": 2})
    with pytest.raises(DataError, match="1 class subfolder"):
        infer_image_spec(lonely, path=lonely, name="one")


def test_adding_images_never_moves_an_old_one_between_splits(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "digits", {"a": 40, "b": 40})
    spec = infer_image_spec(root, path=root, name="digits")
    assert spec.image is not None
    params = FeaturizeParams(test_size=0.2, valid_size=0.2, seed=42, split_by=None,
                             max_categories=8)
    before = image_table(root, spec.image, "label")
    for i in range(40, 80):  # new files, sorted among the old ones by name
        (root / "a" / f"{i:03d}x.png").write_bytes(png(np.full((4, 6), 255 - i)))
    after = image_table(root, spec.image, "label")
    rule = content_rule(before[[SHA_COLUMN]], params)
    assert rule.key_columns == [SHA_COLUMN]
    old = dict(zip(before[SHA_COLUMN], assign(before, rule), strict=True))
    new = dict(zip(after[SHA_COLUMN], assign(after, rule), strict=True))
    assert all(new[sha] == side for sha, side in old.items())
    assert len(new) == len(old) + 40 and set(new.values()) == {0, 1, 2}


def test_example_mnist_writes_class_folders_once_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "data" / "mnist"
    assert write_mnist(out, per_class=3) == 30
    assert sorted(p.name for p in out.iterdir()) == [str(d) for d in range(10)]
    assert sorted(p.name for p in (out / "7").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    with Image.open(out / "7" / "0000.png") as image:
        assert (image.size, image.mode) == ((28, 28), "L")
    with pytest.raises(DataError, match="exists and is not empty"):
        write_mnist(out, per_class=3)
    assert write_mnist(tmp_path / "more", per_class=2, first=3) == 20
    assert (tmp_path / "more" / "7" / "0003.png").read_bytes() != (out / "7" / "0000.png"
                                                                    ).read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging


def test_worst_mistakes_are_the_most_confident_wrong_answers() -> None:
    y = np.array([0, 1, 2, 0, 1])
    proba = np.array([
        [0.9, 0.05, 0.05],  # right
        [0.6, 0.3, 0.1],    # wrong, 0.6 on class 0
        [0.1, 0.85, 0.05],  # wrong, 0.85 on class 1
        [0.2, 0.2, 0.6],    # wrong, 0.6 on class 2 (tie with row 1: row order)
        [0.1, 0.8, 0.1],    # right
    ])
    assert worst_mistakes(y, proba).tolist() == [2, 1, 3]
    assert worst_mistakes(y, proba, limit=1).tolist() == [2]
    task = Task("multiclass", ("0", "1", "2"))
    images = [png(np.zeros((2, 2)))] * 5
    page = gallery_html(task, y, proba, images, [f"f{i}.png" for i in range(5)])
    assert page.count("<figure>") == 3 and "data:image/png;base64," in page
    assert page.index("f2.png") < page.index("f1.png") < page.index("f3.png")
    assert "true 2, predicted 1 (0.85)" in page


def test_the_cnn_learns_a_toy_task_and_pickles_to_a_cpu_network(tmp_path: Path) -> None:
    from flywheel.images.model import IMAGE_COLUMN, ImageModel
    from flywheel.training.cnn import fit_cnn

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.2, size=(120, 1, 8, 8)).astype(np.float32)
    y = np.arange(120) % 2
    x[y == 1, :, :, :4] += 0.7  # class 1: a bright left half
    params = CNNParams(channels=[4], hidden=8, max_epochs=30, patience=30, lr=0.01,
                       batch_size=16, shift=0, rotation=0, device="cpu")
    network, details = fit_cnn(params, 0, (x[:80], y[:80]), (x[80:], y[80:]), classes=2)
    assert details["device"] == "cpu" and 1 <= details["best_epoch"] <= details["epochs"]
    assert (network.predict_proba(x[80:]).argmax(axis=1) == y[80:]).mean() >= 0.95
    assert network.embed(x[:3]).shape == (3, 8)
    root = write_folder(tmp_path / "toy", {"dark": 2, "bright": 2}, size=(8, 8))
    spec = infer_image_spec(root, path=root, name="toy")
    model = ImageModel(spec=spec, network=network, candidate="cnn")
    again = model_from_bytes(model_bytes(model), tmp_path / "m.pkl")
    assert again.network._module is None  # rebuilt on the CPU where it is loaded
    frame = pd.DataFrame({IMAGE_COLUMN: [png(np.full((8, 8), v)) for v in (10, 200)]})
    assert again.predict(frame).equals(model.predict(frame))
    assert list(again.predict(frame).columns)[:2] == ["prediction", "probability"]


@pytest.mark.parametrize("rows, min_steps, epochs, patience", [
    (627, 400, 20, 5),  # ceil(627 / 32) = 20 steps an epoch; 400 / 20 = 20; 3 x 20 / 12 = 5
    (129, 400, 80, 20),  # 5 steps an epoch; 3 x 80 / 12 = 20
    (3200, 400, 12, 3),  # 100 steps an epoch: max_epochs already makes 1,200
    (627, 0, 12, 3),
])
def test_a_small_training_split_trains_more_epochs_with_as_much_patience(
    rows: int, min_steps: int, epochs: int, patience: int
) -> None:
    from flywheel.training.cnn import epoch_plan

    params = CNNParams(batch_size=32, max_epochs=12, patience=3, min_steps=min_steps)
    assert epoch_plan(params, rows) == (epochs, patience)
