"""The scikit-learn transformer that turns a raw feature frame into a float matrix.

Models registered before per-model encodings carry it (compiled on load by `compiled.py`), and
tests hold `encoding.fit_encoding`'s one-hot encoding equal to it; new models carry the
encodings of `encoding.py`, fitted without scikit-learn's per-value Python loops.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flywheel.data.spec import DatasetSpec

MISSING_CATEGORY = "__missing__"


def build_transformer(spec: DatasetSpec, max_categories: int | None = None):  # type: ignore[no-untyped-def]
    """Impute and scale numerics; one-hot categoricals, ignoring values never seen in training.

    The category lists come from the spec rather than from the training rows, so a category
    that happens to be absent from the training split still gets its column. A column with more
    than `max_categories` levels keeps its most frequent ones and one shared column for the
    rest (and for values never seen): thousands of levels would otherwise become thousands of
    dense columns, most of them nearly empty, in every candidate's input.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if spec.numeric:
        parts.append(
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                [f.name for f in spec.numeric],
            )
        )
    if spec.categorical:
        categories = [[*f.categories, MISSING_CATEGORY] for f in spec.categorical if f.categories]
        parts.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(
                        strategy="constant", fill_value=MISSING_CATEGORY, missing_values=np.nan
                    ),
                    OneHotEncoder(
                        categories=categories,
                        handle_unknown="infrequent_if_exist",
                        max_categories=max_categories,
                        sparse_output=False,
                        dtype=np.float32,
                    ),
                ),
                [f.name for f in spec.categorical],
            )
        )
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def fit_transformer(  # type: ignore[no-untyped-def]
    spec: DatasetSpec, train_features: pd.DataFrame, max_categories: int | None = None
):
    transformer = build_transformer(spec, max_categories)
    transformer.fit(train_features)
    return transformer
