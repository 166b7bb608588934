"""A bad image folder through the path a user takes: `flywheel step validate` in a process of
its own stops each case with one line naming the file or class and exit code 4, and writes a
failed result.json (nothing for featurize to read). `flywheel run` stopping the same way with
nothing registered is in tests/e2e/test_images.py."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flywheel.data.spec import save_spec
from flywheel.errors import ValidationFailed
from flywheel.images.infer import infer_image_spec
from tests.conftest import make_project, run_cli
from tests.unit.test_image_pipeline import png, write_folder


def _truncate(root: Path) -> None:
    file = root / "a" / "003.png"
    file.write_bytes(file.read_bytes()[:-20])


def _text(root: Path) -> None:
    (root / "b" / "005.png").write_text("label,value\n1,2\n")


def _empty(root: Path) -> None:
    for file in (root / "c").iterdir():
        file.unlink()


def _few(root: Path) -> None:
    for file in sorted((root / "c").iterdir())[5:]:
        file.unlink()


def _duplicate(root: Path) -> None:
    shutil.copy(root / "a" / "002.png", root / "b" / "copy.png")


def _imbalance(root: Path) -> None:
    for i in range(12, 40):
        (root / "a" / f"{i:03d}.png").write_bytes(png(np.full((4, 6), 100 + i)))


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "a/003.png: not a readable PNG or JPEG image"),
    "text as png": (_text, "b/005.png: not a readable PNG or JPEG image"),
    "empty class": (_empty, "class 'c' has no images"),
    "too few": (_few, "class 'c': 5 images, fewer than image.min_per_class 10"),
    "duplicate": (_duplicate, "a/002.png (class 'a') and b/copy.png (class 'b') are "
                              "byte-identical"),
    "imbalance": (_imbalance, "class 'a' has 40 images and class 'b' 12: 3.3 times as many, "
                              "above image.max_imbalance 3"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("images") / "project")
    for name, (damage, _) in CASES.items():
        folder = write_folder(root / "incoming" / name.replace(" ", "_"),
                              {"a": 12, "b": 12, "c": 12})
        spec = infer_image_spec(folder, path=folder, name=folder.name)
        assert spec.image is not None
        spec.image.max_imbalance = 3
        save_spec(spec, root / "specs" / f"{folder.name}.yaml")
        damage(folder)
    return root


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_image_folder_stops_validate_in_one_line_with_exit_4(project: Path,
                                                                   case: str) -> None:
    name = case.replace(" ", "_")
    done = run_cli(project, "step", "validate", "--spec", f"specs/{name}.yaml")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == ValidationFailed.exit_code, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert CASES[case][1] in lines[0]
    result = project / "artifacts" / "models" / f"flywheel-{name}" / "validate" / "result.json"
    assert '"success": false' in result.read_text()
