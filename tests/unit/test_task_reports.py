"""The evaluation files of a multiclass and a regression candidate, as the evaluate step writes
them: DVC's confusion rows with class labels, per-class table, plot data and PNGs, an offline
page that shows the task's metrics, and a champion drawn beside the candidate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flywheel.config import EvaluateParams
from flywheel.data.task import Task
from flywheel.evaluation.report import evaluate_scores

PARAMS = EvaluateParams(threshold=0.5, slices=["island"], min_slice_rows=5, calibration_bins=10)
SPECIES = Task("multiclass", ("Adelie", "Chinstrap", "Gentoo"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FRAME = pd.DataFrame({"island": ["Biscoe"] * 6 + ["Dream"] * 6})


def _offline(page: str) -> None:
    assert "<script" not in page and "src='http" not in page and 'src="http' not in page


def test_multiclass_files() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    proba = np.full((12, 3), 0.1)
    proba[np.arange(12), [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 0]] = 0.8  # 2 of 12 wrong
    champion = np.full((12, 3), 1 / 3)
    got = evaluate_scores(SPECIES, y, proba, PARAMS, FRAME, champion, "version 1")
    assert got.metrics["candidate"]["accuracy"] == pytest.approx(10 / 12)
    confusion = pd.read_csv(pd.io.common.BytesIO(got.files["plots/confusion.csv"]))
    pairs = confusion.value_counts().to_dict()
    assert pairs[("Adelie", "Chinstrap")] == 1 and pairs[("Gentoo", "Adelie")] == 1
    assert pairs[("Chinstrap", "Chinstrap")] == 4 and len(confusion) == 12
    per_class = json.loads(got.files["per_class.json"])
    assert [r["support"] for r in per_class] == [4, 4, 4]
    assert per_class[1]["precision"] == pytest.approx(4 / 5)  # one Adelie called Chinstrap
    assert json.loads(got.files["metrics.json"]) == got.metrics["candidate"]
    slices = json.loads(got.files["slices.json"])
    assert {(s["model"], s["value"], s["rows"]) for s in slices} == {
        (m, v, 6) for m in ("candidate", "champion") for v in ("Biscoe", "Dream")
    }
    assert got.files["plots/confusion.png"].startswith(PNG_MAGIC)
    page = got.files["report.html"].decode()
    _offline(page)
    assert "macro_f1" in page and "Chinstrap" in page and "version 1" in page


def test_regression_files() -> None:
    y = np.arange(12, dtype="float64")
    predicted = y + np.where(np.arange(12) < 6, 0.5, -2.0)
    got = evaluate_scores(Task("regression"), y, predicted, PARAMS, FRAME, None, None)
    assert got.metrics["candidate"]["mae"] == pytest.approx((6 * 0.5 + 6 * 2) / 12)
    slices = {s["value"]: s for s in json.loads(got.files["slices.json"])}
    assert slices["Biscoe"]["rmse"] == pytest.approx(0.5)  # the slices say where it is off
    assert slices["Dream"]["rmse"] == pytest.approx(2.0)
    points = json.loads(got.files["plots/predictions.json"])
    assert points[0] == {"model": "candidate", "actual": 0.0, "predicted": 0.5, "residual": -0.5}
    assert len(points) == 12
    for name in ("predictions", "residuals"):
        assert got.files[f"plots/{name}.png"].startswith(PNG_MAGIC)
    assert "plots/roc.json" not in got.files
    page = got.files["report.html"].decode()
    _offline(page)
    assert "rmse" in page and "no champion yet" in page
