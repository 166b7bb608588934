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


def test_thousands_of_levels_become_a_bounded_block_with_a_shared_rare_column() -> None:
    import pandas as pd

    from flywheel.data.spec import DatasetSpec

    rng = np.random.default_rng(0)
    levels = [f"zip{i:04d}" for i in range(3000)]
    weights = 1 / np.arange(1, 3001)  # a few common levels, a long tail, as postcodes are
    spec = DatasetSpec.model_validate(
        {
            "name": "wide",
            "path": "wide.parquet",
            "target": "y",
            "classes": ["0", "1"],
            "positive_class": "1",
            "features": [
                {"name": "zip", "kind": "categorical", "categories": levels},
                {"name": "x", "kind": "numeric"},
            ],
        }
    )
    frame = pd.DataFrame(
        {
            "zip": rng.choice(levels, 20_000, p=weights / weights.sum()).astype(object),
            "x": rng.normal(size=20_000),
        }
    )
    fitted = fit_transformer(spec, frame.iloc[:15_000], max_categories=32)
    rest = frame.iloc[15_000:].copy()
    rest.iloc[:40, 0] = "zip9999"  # never seen: goes to the shared column, like a rare level
    rest.iloc[40:60, 0] = np.nan
    expected = fitted.transform(rest)
    assert expected.shape[1] == 1 + 32  # x, 31 frequent levels, one shared column
    assert np.allclose(compile_transformer(fitted).transform(rest), expected)
    assert (expected[:40, -1] == 1).all()


def test_arrow_strings_and_python_strings_give_the_same_matrix() -> None:
    """Batch scoring hands the transformer Arrow-backed `str` columns, serving object arrays."""
    import pandas as pd

    spec = load_spec(REPO / "specs" / "wa_churn.yaml")
    frame = feature_frame(spec, read_table(REPO / spec.path)).iloc[:3000].copy()
    frame.iloc[:20, frame.columns.get_loc("contract")] = "Weekly"
    frame.iloc[20:40, frame.columns.get_loc("contract")] = np.nan
    compiled = compile_transformer(fit_transformer(spec, frame.iloc[40:], max_categories=2))
    text = [f.name for f in spec.categorical]
    as_objects = frame.astype(dict.fromkeys(text, object))
    as_arrow = frame.astype(dict.fromkeys(text, pd.StringDtype("pyarrow", na_value=np.nan)))
    assert all(pd.api.types.is_object_dtype(as_objects[name]) for name in text)
    assert np.array_equal(compiled.transform(as_arrow), compiled.transform(as_objects))

