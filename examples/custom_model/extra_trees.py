"""A bring-your-own candidate: scikit-learn's extremely randomised trees for any task.

List it in params.yaml with this folder on PYTHONPATH (for every process that trains or loads
the model; the estimator pickles as scikit-learn's own class, so serving needs only sklearn):

    train:
      candidates: [logreg, hgb, extra_trees:make_model]
      custom:
        "extra_trees:make_model": {n_estimators: 300, min_samples_leaf: 2}
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor


def make_model(task: Any, params: dict[str, Any], seed: int, input_dim: int) -> Any:
    """Trees split on one-hot columns as well as on numbers; `params` go to the estimator."""
    settings = {"n_estimators": 200, "min_samples_leaf": 2, **params}
    kind = ExtraTreesClassifier if task.is_classification else ExtraTreesRegressor
    return kind(random_state=seed, n_jobs=1, **settings)


make_model.encoding = "one_hot"  # type: ignore[attr-defined]  # the matrix it trains on
