"""An image dataset's folder as a table: one row per file, its class, content hash and pixels.

The layout is torchvision's `ImageFolder`: one subfolder per class holding the images. Hidden
entries (`.DS_Store`, `.git`) are skipped; files at the top level are not images of any class
and are left alone; any other file in a class folder must carry one of the spec's extensions,
so nothing a user put there is silently dropped from training. Validation, featurize and the
spec inference all list the folder here, so they never disagree on what the dataset holds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from flywheel.data.image_spec import ImageSpec
from flywheel.data.infer import label_order
from flywheel.errors import DataError
from flywheel.images.decode import decode_image
from flywheel.images.stats import STAT_COLUMNS, image_stats

PATH_COLUMN = "path"  # the file, relative to the dataset folder (POSIX separators)
SHA_COLUMN = "sha256"  # the file's content hash: its split key and its duplicate check
IMAGE_BYTES_COLUMN = "image"  # = images.model.IMAGE_COLUMN: what the model decodes


def class_folders(root: Path) -> list[Path]:
    """The class subfolders, numbers by value (2 before 10), then names alphabetically."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of class subfolders")
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(folders, key=lambda p: label_order(p.name))


def class_files(folder: Path, extensions: list[str]) -> list[Path]:
    """A class folder's image files, sorted; a file of another kind is refused by name."""
    files = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    for path in files:
        if path.suffix.lower() not in extensions:
            raise DataError(f"{path}: not an image file (expected one of image.extensions "
                            f"{extensions})")
    return files


def image_table(root: Path, image: ImageSpec, label: str) -> pd.DataFrame:
    """One row per image: path, the class in column `label`, sha256, the encoded bytes and the
    statistics (`images/stats.py`). Every file is decoded through `images/decode.py`; the
    first that does not decode raises a `DataError` naming it."""
    rows = []
    for folder in class_folders(root):
        for path in class_files(folder, image.extensions):
            data = path.read_bytes()
            decoded = decode_image(data, image, str(path))
            rows.append({
                PATH_COLUMN: path.relative_to(root).as_posix(),
                label: folder.name,
                SHA_COLUMN: hashlib.sha256(data).hexdigest(),
                IMAGE_BYTES_COLUMN: data,
                **image_stats(decoded),
            })
    columns = [PATH_COLUMN, label, SHA_COLUMN, IMAGE_BYTES_COLUMN, *STAT_COLUMNS]
    return pd.DataFrame(rows, columns=columns)
