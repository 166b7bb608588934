"""The request-path transformer gives scikit-learn's answers, blanks and unseen values included."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flywheel.data.io import feature_frame, read_table
from flywheel.data.spec import load_spec
from flywheel.features.compiled import compile_transformer
from flywheel.features.transformer import fit_transformer

REPO = Path(__file__).resolve().parents[2]


def test_compiled_equals_sklearn_on_the_default_table() -> None:
    spec = load_spec(REPO / "specs" / "wa_churn.yaml")
    frame = feature_frame(spec, read_table(REPO / spec.path))
    fitted = fit_transformer(spec, frame.iloc[:4000])
    rest = frame.iloc[4000:].copy()
    rest.iloc[:50, rest.columns.get_loc("contract")] = "Weekly"  # unseen: all zeros
    rest.iloc[50:80, rest.columns.get_loc("payment_method")] = np.nan  # blank category
    rest.iloc[80:99, rest.columns.get_loc("tenure")] = np.nan  # blank number: the median
    expected = fitted.transform(rest)
    assert np.allclose(compile_transformer(fitted).transform(rest), expected)
    assert np.isnan(frame["total_charges"]).any()  # the real blanks were exercised too
    assert np.allclose(compile_transformer(fitted).transform(frame), fitted.transform(frame))
