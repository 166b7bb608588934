"""An image folder through the whole loop with real parts: `flywheel example mnist`, then
`flywheel run --data data/mnist` validates (Great Expectations on the per-image table), splits
by content hash, trains the CNN and the pixel baseline, evaluates (with the gallery of
mistakes) and registers a signed champion whose held-out accuracy is at least 95%; `flywheel
serve` answers uploads of digits it never saw (multipart, real `bentoml serve` on 127.0.0.1)
at least as well, and `flywheel monitor` reads their logged statistics for drift. Adding
images keeps every old file on its side of the split, and `flywheel data checkout` brings back
the exact folder the version was trained on (real DVC). A folder with a broken file stops the
run in one line, exit 4, with nothing registered. One project for the module
(tests/e2e/conftest.py): the digits train once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from flywheel.errors import ValidationFailed
from flywheel.images.mnist_example import write_mnist
from tests.conftest import run_cli
from tests.e2e.conftest import registered, served, upload

pytestmark = pytest.mark.slow
PER_CLASS = 450  # of the 500 bundled: the rest arrive later as "new images"
ADDED = 50
MODEL = "flywheel-mnist"


def sides(root: Path) -> dict[str, str]:
    folder = root / "artifacts" / "models" / MODEL / "featurize"
    return {sha: name for name in ("train", "valid", "test")
            for sha in pd.read_parquet(folder / f"{name}.parquet", columns=["sha256"])["sha256"]}


def test_a_folder_with_a_broken_file_stops_the_run_with_nothing_registered(root: Path) -> None:
    write_mnist(root / "data" / "broken", per_class=12)
    (root / "data" / "broken" / "4" / "0003.png").write_text("not,an,image\n")
    done = run_cli(root, "run", "--data", "data/broken", COLUMNS="400")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == ValidationFailed.exit_code, done.stderr[-3000:]
    assert len(lines) == 1 and "4/0003.png: not a readable PNG or JPEG image" in lines[0]
    assert "flywheel-broken" not in registered(root)
    shutil.rmtree(root / "data" / "broken")


def test_two_commands_reach_a_champion_with_95_percent_held_out(root: Path) -> None:
    made = run_cli(root, "example", "mnist", "--per-class", str(PER_CLASS))
    assert made.returncode == 0, made.stderr[-2000:]
    done = run_cli(root, "run", "--data", "data/mnist", COLUMNS="200")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{MODEL} version 1: promoted to champion" in done.stdout
    out = root / "artifacts" / "models" / MODEL
    metrics = json.loads((out / "evaluate" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.95, metrics
    decision = json.loads((out / "promote" / "decision.json").read_text())
    assert decision["promoted"] and str(decision["version"]) == "1"
    assert "Misclassified images" in (out / "evaluate" / "report.html").read_text()
    candidates = json.loads((out / "train" / "candidates.json").read_text())
    assert [c["name"] for c in candidates] == ["cnn", "pixel_logreg"]
    assert (root / "specs" / "mnist.yaml").is_file() and MODEL in registered(root)


def test_the_served_champion_answers_uploads_of_unseen_digits(root: Path) -> None:
    unseen = root.parent / "unseen"
    write_mnist(unseen, per_class=ADDED, first=PER_CLASS)  # never in the project's folder
    files = sorted(unseen.rglob("*.png"))
    with served(root, MODEL) as client:
        right = 0
        for path in files:
            first = upload(client, path)
            assert first["model_name"] == MODEL and set(first["probabilities"]) == {
                str(d) for d in range(10)}
            right += first["prediction"] == path.parent.name
        assert right / len(files) >= 0.95, f"{right} of {len(files)} unseen digits"
        report = run_cli(root, "monitor", "--json", "--model", MODEL)
    assert report.returncode == 0, report.stderr[-3000:]
    drift = json.loads(report.stdout)
    assert drift["window"]["rows"] == len(files), drift["window"]
    compared = set(drift["features"])  # the statistics and the embedding summary
    assert {"mean_intensity", "std_intensity", "embedding_norm"} <= compared, compared
    assert not drift["features"]["mean_intensity"]["drifted"]  # the same source of digits


def test_new_images_keep_old_ones_in_their_splits_and_checkout_restores(root: Path) -> None:
    before = sides(root)
    write_mnist(root.parent / "new", per_class=ADDED, first=PER_CLASS)
    shutil.copytree(root.parent / "new", root / "data" / "mnist", dirs_exist_ok=True)
    done = run_cli(root, "step", "featurize", "--spec", "specs/mnist.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    after = sides(root)
    assert len(after) == len(before) + 10 * ADDED
    assert all(after[sha] == side for sha, side in before.items())
    back = run_cli(root, "data", "checkout", "--version", "1", "--model", MODEL)
    assert back.returncode == 0, back.stderr[-3000:]
    assert sum(1 for _ in (root / "data" / "mnist").rglob("*.png")) == 10 * PER_CLASS
