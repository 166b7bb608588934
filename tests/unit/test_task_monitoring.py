"""Monitoring per task: the output's reference profile and drift (predicted-class shares for
multiclass, the predicted value for regression), and the inference log's answer columns."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flywheel.config import load_params
from flywheel.data.spec import DatasetSpec
from flywheel.monitoring.drift import window_drift
from flywheel.monitoring.profile import build_profile, profile_task, score_column
from tests.conftest import REPO
from tests.unit.test_task_answers import FRAME, spec_of

CFG = load_params(REPO / "params.yaml").monitor.model_copy(update={"min_rows": 100})
FEATURES = pd.concat([FRAME] * 50, ignore_index=True).astype({"colour": object})


def _window(spec: DatasetSpec, output: dict[str, list[object]]) -> pa.Table:
    rows = len(next(iter(output.values())))
    frame = FEATURES.sample(rows, replace=True, random_state=1).reset_index(drop=True)
    return pa.Table.from_pandas(frame.assign(**output), preserve_index=False)


def test_multiclass_output_drift_is_a_shift_in_predicted_class_shares() -> None:
    spec = spec_of("multiclass")
    rng = np.random.default_rng(0)
    held_out = rng.dirichlet([1, 1, 1], size=600)  # argmax: about a third each
    profile = build_profile(spec, FEATURES, held_out, CFG)
    assert profile["task"] == "multiclass" and score_column(profile) == "prediction"
    assert profile["score"]["kind"] == "categorical"
    assert profile["score"]["categories"] == ["a", "b", "c"] and profile["score"]["rows"] == 600
    assert profile_task(profile).classes == ("a", "b", "c")
    same = _window(spec, {"prediction": list(rng.choice(["a", "b", "c"], 600))})
    _, score, _ = window_drift(profile, same, CFG)
    assert not score["drifted"]
    shifted = _window(spec, {"prediction": ["a"] * 500 + ["b"] * 50 + ["c"] * 50})
    _, score, _ = window_drift(profile, shifted, CFG)
    assert score["drifted"] and score["psi"] > 0.5


def test_regression_output_drift_is_on_the_predicted_value() -> None:
    spec = spec_of("regression")
    rng = np.random.default_rng(1)
    profile = build_profile(spec, FEATURES, rng.normal(10, 2, size=600), CFG)
    assert score_column(profile) == "prediction" and profile["score"]["rows"] == 600
    _, score, _ = window_drift(profile, _window(spec, {"prediction": rng.normal(10, 2, 600)}), CFG)
    assert not score["drifted"]
    _, score, _ = window_drift(profile, _window(spec, {"prediction": rng.normal(14, 2, 600)}), CFG)
    assert score["drifted"]


def test_a_binary_profile_keeps_the_positive_probability() -> None:
    spec = spec_of("binary")
    positive = np.linspace(0.0, 0.3, 300)
    scores = np.column_stack([1.0 - positive, positive])
    profile = build_profile(spec, FEATURES, scores, CFG)
    assert score_column(profile) == "probability" and profile["score"]["rows"] == 300
    assert max(profile["score"]["quantiles"]) <= 0.3  # the positive column, not the negative
    assert profile_task(profile).classes == ("no", "yes")
    del profile["task"]  # a profile written before tasks: binary
    assert profile_task(profile).kind == "binary"


def test_the_inference_log_writes_the_answer_columns_of_each_task(tmp_path: Path) -> None:
    from flywheel.serving.inference_log import InferenceLog, LogEntry

    answers = {
        "multiclass": [{"prediction": "b", "probabilities": {"a": 0.2, "b": 0.7, "c": 0.1},
                        "model_version": "1"}],
        "regression": [{"prediction": 12.5, "model_version": "1"}],
    }
    expected = {
        "multiclass": {"prediction": "b", "probability_a": 0.2, "probability_b": 0.7,
                       "probability_c": 0.1},
        "regression": {"prediction": 12.5},
    }
    for kind, answer in answers.items():
        folder = tmp_path / kind
        log = InferenceLog(folder, spec_of(kind), roll_rows=1, roll_seconds=60, queue_size=10)
        log.start()
        log.submit(LogEntry("r1", datetime.now(UTC), orjson.dumps({"x": 1.0, "colour": "red"}),
                            orjson.dumps(answer)))
        log.close()
        table = pq.read_table(next(folder.glob("*.parquet")))
        row = table.to_pylist()[0]
        assert {k: row[k] for k in expected[kind]} == expected[kind]
        assert "probability" not in table.column_names
        if kind == "regression":
            assert table.schema.field("prediction").type == pa.float64()
