"""Infer an image dataset's spec from its folder, for the user to read, edit and commit.

The rules, each visible in the YAML written: the classes are the subfolders (two make a binary
task, more a multiclass one); the mode is grey (`L`) when most files are grey, else `RGB`; the
size is the files' own when they all share it, else the median width by the median height
(the most common size of a folder of assorted sizes is an accident of a few files). A size
over `WORKING_SIDE` pixels on its longer side is scaled down to it, keeping its aspect ratio:
the network trains and serves at that working size (a 224x224 photo becomes 64x64, so a CPU
trains in minutes; raise `width` and `height` in the spec for more detail at more cost).
`resize: fit` (decode.py: transparency over white, converted, resized) when the files differ
in size or mode or are scaled down; a uniform folder at its own size gets `resize: none`, so an
odd file arriving later is refused, not silently stretched. Only headers are read here: a file
that cannot even be opened is left for validation to name.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from statistics import median

import pandas as pd
from PIL import Image, UnidentifiedImageError

from flywheel.data.image_spec import ImageSpec
from flywheel.data.infer import inferred_floors
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import TaskKind
from flywheel.errors import ConfigError, DataError
from flywheel.images.decode import FORMATS
from flywheel.images.folder import class_folders
from flywheel.images.stats import stat_features

LABEL = "label"  # an image dataset's target: the class subfolder
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # Pillow modes read as one channel
WORKING_SIDE = 64  # the longest side an inferred spec trains at


def infer_image_spec(
    root: Path, *, path: Path, name: str, task: TaskKind | None = None
) -> DatasetSpec:
    """The spec for the folder `root` (recorded as `path`); `task` must fit the class count."""
    folders = class_folders(root)
    if len(folders) < 2:
        raise DataError(f"{root}: {len(folders)} class subfolder(s); an image dataset needs "
                        "one subfolder per class, two at least")
    defaults = ImageSpec.model_fields["extensions"].get_default(call_default_factory=True)
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    counts: dict[str, int] = {}
    for folder in folders:
        files = [p for p in folder.iterdir() if p.suffix.lower() in defaults]
        counts[folder.name] = len(files)
        for file in files:
            header = _header(file)
            if header is not None:
                sizes[header[0]] += 1
                modes["L" if header[1] in GREY_MODES else "RGB"] += 1
    if not sizes:
        raise DataError(f"{root}: no readable PNG or JPEG file in its class subfolders")
    kind = _task(len(folders), task)
    classes = [f.name for f in folders]
    (width, height), mode = _working_size(sizes), modes.most_common(1)[0][0]
    uniform = len(sizes) == 1 and len(modes) == 1 and (width, height) in sizes
    labels = pd.Series([c for c in classes for _ in range(counts[c])], dtype=object)
    return DatasetSpec(
        name=name, path=path, target=LABEL, task=kind, classes=classes,
        positive_class=classes[-1] if kind == "binary" else None,
        features=stat_features(),
        floors=inferred_floors(kind, labels),
        image=ImageSpec(width=width, height=height, mode=mode,  # type: ignore[arg-type]
                        resize="none" if uniform else "fit"),
    )


def _working_size(sizes: Counter[tuple[int, int]]) -> tuple[int, int]:
    """The files' size (the median width and height when they differ), its longer side scaled
    down to `WORKING_SIDE` when over it."""
    widths = [w for (w, _), n in sizes.items() for _ in range(n)]
    heights = [h for (_, h), n in sizes.items() for _ in range(n)]
    width, height = round(median(widths)), round(median(heights))
    scale = min(1.0, WORKING_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _header(file: Path) -> tuple[tuple[int, int], str] | None:
    try:
        with Image.open(file, formats=list(FORMATS)) as image:
            return image.size, image.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def _task(count: int, task: TaskKind | None) -> TaskKind:
    kind: TaskKind = "binary" if count == 2 else "multiclass"
    if task is not None and task != kind:
        raise ConfigError(f"--task {task}: an image folder with {count} class subfolders is "
                          f"a {kind} task")
    return kind
