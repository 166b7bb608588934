"""Large photos on CPU: decoding and training at the inferred working size against full size.

Data: the end-to-end tests' coloured shapes (tests/e2e/imagesets.py) drawn at `--side` pixels
(default 224) and saved as RGB JPEG, `--per-class` of each of five classes. Prints the spec
inferred for the folder, the seconds to decode every file at the working size (a JPEG is
decoded at a reduced scale, `draft`) and at full size, and the CNN's training images per second
for one epoch at each size (params.yaml's train.cnn, one process, the CPU).

    .venv/bin/python benchmarks/image_working_size.py [--side 224] [--per-class 100]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from flywheel.config import load_params
from flywheel.data.image_spec import ImageSpec
from flywheel.images.decode import decode_image, to_batch
from flywheel.images.infer import infer_image_spec
from flywheel.training.cnn import fit_cnn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.imagesets import CLASSES, shape_image  # noqa: E402


def write_photos(root: Path, side: int, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            image = shape_image(name, rng).resize((side, side), Image.Resampling.BILINEAR)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            (root / name / f"{index:04d}.jpg").write_bytes(buffer.getvalue())


def decoded(root: Path, spec: ImageSpec) -> tuple[np.ndarray, np.ndarray, float]:
    files = sorted(root.rglob("*.jpg"))
    started = time.perf_counter()
    pixels = [decode_image(path.read_bytes(), spec, str(path)) for path in files]
    seconds = time.perf_counter() - started
    labels = np.array([CLASSES.index(path.parent.name) for path in files])
    return to_batch(pixels), labels, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--per-class", type=int, default=100)
    args = parser.parse_args()
    params = load_params(Path("params.yaml")).train.cnn.model_copy(
        update={"max_epochs": 1, "min_steps": 0, "device": "cpu"})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        write_photos(root, args.side, args.per_class)
        working = infer_image_spec(root, path=root, name="photos").image
        assert working is not None
        print(f"inferred: {working.width}x{working.height} {working.mode} "
              f"resize {working.resize}")
        full = working.model_copy(update={"width": args.side, "height": args.side})
        for label, spec in (("working", working), ("full", full)):
            x, y, seconds = decoded(root, spec)
            _, details = fit_cnn(params, 0, (x, y), (x[:50], y[:50]), len(CLASSES))
            print(f"{label} {spec.width}x{spec.height}: decode {len(x)} files {seconds:.1f} s, "
                  f"train {details['train_images_per_s']} images/s")


if __name__ == "__main__":
    main()
