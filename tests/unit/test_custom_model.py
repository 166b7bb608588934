"""Bring your own model: an import-path candidate is checked, loaded, trained per task and
selected like a built-in, and says where its code came from."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from flywheel.config import TrainParams
from flywheel.data.task import Task
from flywheel.errors import ConfigError
from flywheel.training.candidates import encoding_for, select_best, train_candidates
from flywheel.training.custom import load_factory, origin
from tests.unit.test_training import same, train_params

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "custom_model"
TREES = "extra_trees:make_model"
TORCH = "tiny_torch:make_module"
MULTICLASS = Task("multiclass", ("a", "b", "c"))


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


@pytest.fixture(scope="module")
def three_classes() -> tuple[np.ndarray, ...]:
    X, y = make_classification(n_samples=500, n_features=8, n_informative=5, n_classes=3,
                               class_sep=1.5, random_state=1)
    return X[:350], y[:350], X[350:], y[350:]


def params_with(candidates: list[str], **custom: dict) -> TrainParams:
    base = train_params(["hgb"]).model_dump()
    return TrainParams.model_validate({**base, "candidates": candidates, "custom": custom})


def test_a_name_that_is_no_path_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="'my model' is neither a built-in candidate"):
        params_with(["hgb", "my model"])


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module:make", "train.candidates: 'no_such_module:make': cannot import"),
        ("extra_trees:missing", "module 'extra_trees' has no callable 'missing'"),
    ],
)
def test_a_bad_path_is_one_config_error(path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_factory(path)


def test_the_factory_declares_its_encoding() -> None:
    assert encoding_for(TREES) == "one_hot"
    assert encoding_for("hgb") == "native"


def test_origin_names_the_module_and_hashes_its_file() -> None:
    found = origin(TREES)
    source = EXAMPLES / "extra_trees.py"
    assert found["path"] == TREES and Path(found["module_file"]) == source
    assert found["file_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_extra_trees_train_and_compete_with_the_built_ins(three_classes,
                                                           tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = three_classes
    params = params_with(["hgb", TREES], **{TREES: {"n_estimators": 50}})
    results = train_candidates(params, same(X_train, X_valid), y_train, y_valid, tmp_path,
                               task=MULTICLASS)
    trees = results[1]
    assert trees.estimator.n_estimators == 50  # params reached the factory
    assert trees.estimator.predict_proba(X_valid).shape == (len(X_valid), 3)
    assert trees.valid_metrics["macro_f1"] > 0.7
    assert trees.details["origin"]["path"] == TREES
    assert select_best(results, "macro_f1", MULTICLASS).name in {"hgb", TREES}


def test_a_torch_module_is_trained_by_the_mlp_loop(three_classes, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = three_classes
    params = params_with([TORCH], **{TORCH: {"width": 16}})
    (result,) = train_candidates(params, same(X_train, X_valid), y_train, y_valid, tmp_path,
                                 task=MULTICLASS)
    assert {"best_epoch", "device", "origin"} <= result.details.keys()
    proba = result.estimator.predict_proba(X_valid)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert result.valid_metrics["macro_f1"] > 0.6
    restored = pickle.loads(pickle.dumps(result.estimator))
    np.testing.assert_allclose(restored.predict_proba(X_valid), proba, rtol=1e-6)
