"""Answers per task at every door: the service's JSON and its schema, serving metrics, the
flat columns of the predictions file and the inference log, and the labels /feedback takes.

Hand-made models (a fitted scikit-learn estimator on a tiny frame, wrapped in TabularModel as
training wraps it) on the contract's output columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flywheel.data.answers import flat_answers, flat_columns, json_answers
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import task_of
from flywheel.model import TabularModel

FEATURES = [{"name": "x", "kind": "numeric"},
            {"name": "colour", "kind": "categorical", "categories": ["red", "blue"]}]
FRAME = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                      "colour": ["red", "blue", "red", "blue", "red", "blue"]})
TARGETS = {
    "binary": ["no", "no", "no", "yes", "yes", "yes"],
    "multiclass": ["a", "a", "b", "b", "c", "c"],
    "regression": [1.0, 3.0, 5.0, 7.0, 9.0, 11.0],  # 2x + 1
}
CLASSES = {"binary": ["no", "yes"], "multiclass": ["a", "b", "c"], "regression": None}


def spec_of(kind: str) -> DatasetSpec:
    extra: dict[str, Any] = {"classes": CLASSES[kind]} if CLASSES[kind] else {}
    if kind == "binary":
        extra["positive_class"] = "yes"
    return DatasetSpec.model_validate({"name": "t", "path": "t.csv", "target": "y",
                                       "task": kind, "features": FEATURES, **extra})


def model_of(kind: str) -> TabularModel:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from flywheel.features.encoding import fit_encoding

    spec = spec_of(kind)
    transformer = fit_encoding(spec, FRAME, "one_hot", 10)
    y = task_of(spec).encode_target(pd.Series(TARGETS[kind]), "y")
    estimator = (LinearRegression() if kind == "regression" else LogisticRegression(C=100.0))
    estimator.fit(transformer.transform(FRAME), y)
    return TabularModel(spec=spec, transformer=transformer, estimator=estimator,
                        candidate="logreg", threshold=0.5)


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def model(request: pytest.FixtureRequest) -> TabularModel:
    return model_of(request.param)


def test_json_answers_per_task(model: TabularModel) -> None:
    task = model.task
    answers = json_answers(task, model.predict(FRAME))
    first, last = answers[0], answers[-1]
    if task.kind == "regression":
        assert set(first) == {"prediction"}
        assert first["prediction"] == pytest.approx(1.0, abs=1e-4)
        assert last["prediction"] == pytest.approx(11.0, abs=1e-4)
        return
    binary = {"probability"} if task.kind == "binary" else set()
    assert set(first) == {"prediction", "probabilities"} | binary
    assert list(first["probabilities"]) == list(task.classes)
    assert sum(first["probabilities"].values()) == pytest.approx(1.0)
    assert first["prediction"] == TARGETS[task.kind][0]
    assert last["prediction"] == TARGETS[task.kind][-1]
    if task.kind == "binary":  # the positive class's, as before
        assert last["probability"] == pytest.approx(last["probabilities"]["yes"])


def test_flat_columns_name_each_class_and_keep_binary_as_it_was(model: TabularModel) -> None:
    task = model.task
    columns = flat_answers(task, model.predict(FRAME))
    assert list(columns) == flat_columns(task)
    assert {"binary": ["prediction", "probability"],
            "multiclass": ["prediction", "probability_a", "probability_b", "probability_c"],
            "regression": ["prediction"]}[task.kind] == flat_columns(task)
    if task.kind == "multiclass":
        total = columns["probability_a"] + columns["probability_b"] + columns["probability_c"]
        assert np.allclose(total, 1.0)
    if task.kind == "regression":
        assert columns["prediction"].dtype == np.float64


def test_the_response_schema_documents_each_task() -> None:
    from pydantic import TypeAdapter

    from flywheel.serving.schema import prediction_type

    def properties(kind: str) -> dict[str, Any]:
        return TypeAdapter(prediction_type(spec_of(kind))).json_schema()["properties"]

    assert properties("regression")["prediction"]["type"] == "number"
    assert "probabilities" not in properties("regression")
    multi = properties("multiclass")
    assert multi["prediction"]["type"] == "string"
    assert multi["probabilities"]["additionalProperties"] == {"type": "number"}
    assert "probability" not in multi
    assert {"probability", "probabilities", "model_version"} <= set(properties("binary"))


def test_scoring_counts_classes_and_observes_probabilities_or_values() -> None:
    from prometheus_client import REGISTRY

    from flywheel.serving.metrics import serving_metrics
    from flywheel.serving.registry_watch import LoadedModel
    from flywheel.serving.scoring import score

    metrics = serving_metrics()
    records = FRAME.to_dict("records")
    for kind, version in (("multiclass", "m1"), ("regression", "r1")):
        tabular = model_of(kind)
        loaded = LoadedModel(pyfunc=None, name="t", version=version)
        object.__setattr__(loaded, "predict", tabular.predict)  # cached_property's slot
        answers = score(loaded, tabular.spec, records, metrics)
        assert answers[0]["model_version"] == version and len(answers) == 6

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    assert value("flywheel_predictions_total", predicted_class="a", model_version="m1") == 2
    assert value("flywheel_class_probability_count", model_version="m1", **{"class": "c"}) == 6
    assert value("flywheel_predictions_total", predicted_class="none", model_version="r1") == 6
    assert value("flywheel_predicted_value_count", model_version="r1") == 6
    assert value("flywheel_predicted_value_bucket", model_version="r1", le="10.0") == 5


def test_feedback_labels_per_task(tmp_path: Path) -> None:
    from flywheel.monitoring.feedback import (
        ACCEPTED,
        BAD_LABEL,
        RequestIndex,
        check_feedback,
        read_feedback,
        store_feedback,
    )

    index = RequestIndex(tmp_path / "no-log")
    index.known = lambda ids: set(ids)  # type: ignore[method-assign]  (every id answered)
    frame = pd.DataFrame({"request_id": ["1", "2", "3", "4", "5"],
                          "label": ["b", "z", 2.5, None, True]})
    multi = check_feedback(frame, task_of(spec_of("multiclass")), index)
    assert multi[ACCEPTED]["label"].tolist() == ["b"]
    assert multi[BAD_LABEL]["request_id"].tolist() == ["2", "3", "4", "5"]
    numbers = pd.DataFrame({"request_id": ["1", "2", "3", "4", "5", "6"],
                            "label": [2.5, 3, "4", float("nan"), float("inf"), False]})
    regression = check_feedback(numbers, task_of(spec_of("regression")), index)
    assert regression[ACCEPTED]["label"].tolist() == [2.5, 3.0]
    assert regression[BAD_LABEL]["label"].tolist()[0] == "4"  # as sent
    store_feedback(tmp_path / "fb", regression[ACCEPTED])
    stored = read_feedback(tmp_path / "fb")
    assert stored is not None and stored["label"].dtype == np.float64  # typed


def test_a_champion_of_another_task_is_a_schema_change() -> None:
    from flywheel.serving.request_schema import RequestSchema, schema_changes

    binary, multi = RequestSchema(spec_of("binary"), 256), RequestSchema(spec_of("multiclass"), 256)
    assert schema_changes(binary, RequestSchema(spec_of("binary"), 256)) == ""
    assert schema_changes(binary, multi) == (
        "answers: binary ['no', 'yes'] -> multiclass ['a', 'b', 'c']")


def test_a_champion_of_another_task_swaps_in_with_its_spec_or_is_refused() -> None:
    """Same request fields, other task: under `swap` it answers with its own spec (its task),
    not the configured one; under `refuse` it is not swapped in."""
    from flywheel.serving.registry_watch import LoadedModel
    from flywheel.serving.request_schema import SchemaRefused
    from flywheel.serving.schema_swap import SchemaSwap

    def loaded(kind: str, version: str) -> LoadedModel:
        model = LoadedModel(pyfunc=None, name="t", version=version)
        object.__setattr__(model, "spec", spec_of(kind))  # cached_property's slot
        return model

    swap = SchemaSwap(spec_of("binary"), 256, "swap")
    current = swap.prepare(loaded("binary", "1"), None)
    swapped = swap.prepare(loaded("multiclass", "2"), current)
    assert swapped.request_schema is not None and swapped.request_schema.spec.task == "multiclass"
    refuse = SchemaSwap(spec_of("binary"), 256, "refuse")
    current = refuse.prepare(loaded("binary", "1"), None)
    with pytest.raises(SchemaRefused, match="answers: binary"):
        refuse.prepare(loaded("multiclass", "2"), current)
