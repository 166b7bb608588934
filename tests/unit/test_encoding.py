"""The encodings each candidate trains on, fitted with Arrow's counting, give scikit-learn's
answers; the native one stays within HistGradientBoosting's 255 levels; and a model scores raw
frames (ints where floats were trained, unseen and blank levels) through the very object that
built its training matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.data.io import feature_frame, read_table
from flywheel.data.spec import DatasetSpec, load_spec
from flywheel.features.compiled import compile_transformer
from flywheel.features.encoding import NATIVE_LEVELS, fit_encoding
from flywheel.features.transformer import MISSING_CATEGORY, fit_transformer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wide() -> tuple[DatasetSpec, pd.DataFrame]:
    """A 3,000-level long-tailed column (postcodes), a number with blanks, and a binary."""
    rng = np.random.default_rng(0)
    levels = [f"zip{i:04d}" for i in range(3000)]
    weights = 1 / np.arange(1, 3001) ** 0.8
    spec = DatasetSpec.model_validate(
        {
            "name": "wide",
            "path": "wide.parquet",
            "target": "y",
            "classes": ["0", "1"],
            "positive_class": "1",
            "features": [
                {"name": "zip", "kind": "categorical", "categories": levels},
                {"name": "x", "kind": "numeric", "nullable": True},
                {"name": "plan", "kind": "categorical", "categories": ["a", "b"]},
            ],
        }
    )
    n = 30_000
    zips = rng.choice(levels, n, p=weights / weights.sum()).astype(object)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    plan = rng.choice(["a", "b"], n).astype(object)
    return spec, pd.DataFrame({"zip": zips, "x": x, "plan": plan})


def test_one_hot_equals_sklearn_on_the_default_table() -> None:
    spec = load_spec(REPO / "specs" / "wa_churn.yaml")
    frame = feature_frame(spec, read_table(REPO / spec.path))
    train, rest = frame.iloc[:4000], frame.iloc[4000:].copy()
    rest.iloc[:50, rest.columns.get_loc("contract")] = "Weekly"  # unseen
    rest.iloc[50:80, rest.columns.get_loc("payment_method")] = np.nan
    rest.iloc[80:99, rest.columns.get_loc("tenure")] = np.nan
    for limit in (64, 2):  # all levels kept; most grouped into the shared column
        ours = fit_encoding(spec, train, "one_hot", limit).transform(rest)
        expected = fit_transformer(spec, train, limit).transform(rest)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_one_hot_keeps_the_levels_sklearn_keeps_on_a_long_tail(wide) -> None:
    spec, frame = wide
    fitted = fit_encoding(spec, frame.iloc[:20_000], "one_hot", 32)
    rest = frame.iloc[20_000:].copy()
    rest.iloc[:40, 0] = "zip9999"  # unseen: the shared column, like a rare level
    reference = compile_transformer(fit_transformer(spec, frame.iloc[:20_000], 32))
    assert fitted.width == reference.width == 1 + 32 + 3
    np.testing.assert_allclose(fitted.transform(rest), reference.transform(rest), atol=1e-6)


def test_native_codes_stay_within_hgb_levels(wide) -> None:
    from sklearn.preprocessing import OrdinalEncoder

    spec, frame = wide
    train = frame.iloc[:20_000]
    native = fit_encoding(spec, train, "native", max_categories=32)  # one-hot's limit: unused
    rest = frame.iloc[20_000:].copy()
    rest.iloc[:40, 0] = "zip9999"
    rest.iloc[40:60, 0] = np.nan
    rest.iloc[60:70, 2] = "c"  # unseen where nothing is shared: missing for HGB
    X = native.transform(rest)
    assert X.shape == (len(rest), 3) and native.categorical_columns == [1, 2]
    assert np.nanmax(X[:, 1]) == NATIVE_LEVELS - 1  # 254 kept levels, code 254 shared
    assert (X[:40, 1] == NATIVE_LEVELS - 1).all()
    assert np.isnan(X[60:70, 2]).all() and not np.isnan(X[70:, 2]).any()
    np.testing.assert_array_equal(X[:, 0], rest["x"].to_numpy(dtype="float32"))  # as it is
    # Known levels get OrdinalEncoder's codes with the same 255-level limit.
    categories = [[*spec.features[0].categories, MISSING_CATEGORY]]
    encoder = OrdinalEncoder(categories=categories, max_categories=NATIVE_LEVELS)
    encoder.fit(train[["zip"]])
    known = rest.iloc[60:][["zip"]]
    np.testing.assert_array_equal(X[60:, 1], encoder.transform(known)[:, 0])


@pytest.mark.slow  # fits gradient boosting on a wide table
def test_a_native_hgb_model_scores_raw_frames_as_it_was_trained(wide) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from flywheel.model import TabularModel

    spec, frame = wide
    y = (frame["zip"].str[-1].isin(list("01234")) ^ (frame["x"] > 1)).to_numpy(dtype=int)
    native = fit_encoding(spec, frame, "native", 32)
    hgb = HistGradientBoostingClassifier(
        max_iter=20, categorical_features=native.categorical_columns
    )
    hgb.fit(native.transform(frame), y)
    model = TabularModel(
        spec=spec, transformer=native, estimator=hgb, candidate="hgb", threshold=0.5
    )
    sample = frame.iloc[:200].copy()
    trained = hgb.predict_proba(native.transform(sample))[:, 1]
    np.testing.assert_array_equal(model.positive_proba(sample), trained)
    as_ints = sample.assign(x=sample["x"].fillna(0).round().astype("int64"))
    as_floats = as_ints.assign(x=as_ints["x"].astype("float64"))
    np.testing.assert_array_equal(model.positive_proba(as_ints), model.positive_proba(as_floats))
    odd = sample.assign(zip=["zip9999"] * 100 + [None] * 100)
    assert np.isfinite(model.positive_proba(odd)).all()
