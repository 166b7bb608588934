"""An image folder's own checks, before its metadata table meets Great Expectations.

What a table's suite cannot see in a table of statistics is checked here, each refusal one
line naming the file or class: the class folders match the spec's classes (none empty), every
file decodes through `images/decode.py` to the spec's size and mode (the very decoding training
and serving use), each class has `image.min_per_class` images, the largest class is at most
`image.max_imbalance` times the smallest, and no byte-identical file sits in two classes (one
of the two labels is wrong, and the split would put the copies on one side with both labels).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flywheel.data.spec import DatasetSpec
from flywheel.errors import DataError, ValidationFailed
from flywheel.images.folder import PATH_COLUMN, SHA_COLUMN, class_files, class_folders, image_table


def checked_image_table(spec: DatasetSpec, root: Path) -> pd.DataFrame:
    """The folder's table (`images.folder.image_table`) once every check passed; the first
    that fails raises `ValidationFailed` with one line."""
    assert spec.image is not None
    try:
        _check_classes(spec, root)
        table = image_table(root, spec.image, spec.target)
    except DataError as exc:
        raise ValidationFailed(str(exc)) from None
    _check_counts(spec, table[spec.target].value_counts())
    _check_duplicates(table, spec.target)
    return table


def _check_classes(spec: DatasetSpec, root: Path) -> None:
    assert spec.image is not None
    found = {folder.name: folder for folder in class_folders(root)}
    expected = spec.classes or []
    unknown = [name for name in found if name not in expected]
    if unknown:
        raise ValidationFailed(f"{found[unknown[0]]}: class folder {unknown[0]!r} is not one of "
                               f"the spec's classes {expected}")
    for name in expected:
        if name not in found:
            raise ValidationFailed(f"{root / name}: class {name!r} of the spec has no folder")
        if not class_files(found[name], spec.image.extensions):
            raise ValidationFailed(f"{found[name]}: class {name!r} has no images")


def _check_counts(spec: DatasetSpec, counts: pd.Series) -> None:
    assert spec.image is not None
    fewest, most = counts.idxmin(), counts.idxmax()
    if counts[fewest] < spec.image.min_per_class:
        raise ValidationFailed(f"class {fewest!r}: {counts[fewest]} images, fewer than "
                               f"image.min_per_class {spec.image.min_per_class}")
    ratio = counts[most] / counts[fewest]
    if ratio > spec.image.max_imbalance:
        raise ValidationFailed(
            f"class {most!r} has {counts[most]} images and class {fewest!r} {counts[fewest]}: "
            f"{ratio:.1f} times as many, above image.max_imbalance {spec.image.max_imbalance:g}"
        )


def _check_duplicates(table: pd.DataFrame, label: str) -> None:
    labels = table.groupby(SHA_COLUMN)[label].nunique()
    clashing = labels[labels > 1]
    if clashing.empty:
        return
    copies = table[table[SHA_COLUMN] == clashing.index[0]].drop_duplicates(label)
    first, second = copies.iloc[0], copies.iloc[1]
    raise ValidationFailed(
        f"{first[PATH_COLUMN]} (class {first[label]!r}) and {second[PATH_COLUMN]} (class "
        f"{second[label]!r}) are byte-identical: one image cannot belong to two classes"
    )
