"""The registered model through plain MLflow, as someone scoring outside our service uses it.

A user loads `models:/NAME/VERSION` with `mlflow.pyfunc.load_model` and predicts a frame read
from a file: integer columns stay int64, money columns float64, text columns strings. The
signature must accept that frame as it is, and refuse text in a numeric column with a message
naming the column (not silently impute it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.integration.serving.conftest import ROOT, Registry


@pytest.fixture(scope="module")
def served(registry: Registry) -> Any:
    import mlflow.pyfunc

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    try:
        yield mlflow.pyfunc.load_model(f"models:/{registry.name}/1")
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous)


@pytest.fixture(scope="module")
def user_frame() -> pd.DataFrame:
    """The default table as pandas reads it: the frame a user would pass."""
    return pd.read_csv(ROOT / "data" / "wa_churn.csv").head(300)


def test_a_frame_as_read_from_csv_is_scored(served: Any, user_frame: pd.DataFrame) -> None:
    assert user_frame["tenure"].dtype == np.int64  # what used to be refused
    assert user_frame["monthly_charges"].dtype == np.float64
    answer = served.predict(user_frame)
    assert len(answer) == len(user_frame)
    assert set(answer["prediction"]) <= {"Yes", "No"}
    assert answer["probability"].between(0, 1).all()


def test_ints_and_floats_give_the_same_answer(served: Any, user_frame: pd.DataFrame) -> None:
    as_floats = user_frame.astype({"tenure": "float64", "female": "float64"})
    as_floats.loc[0, "tenure"] = np.nan  # a blank read from a file makes the column float
    answer_int = served.predict(user_frame)["probability"].to_numpy()
    answer_float = served.predict(as_floats)["probability"].to_numpy()
    assert np.allclose(answer_int[1:], answer_float[1:])
    assert 0.0 <= answer_float[0] <= 1.0


def test_text_in_a_numeric_column_is_refused_by_name(served: Any, user_frame: pd.DataFrame) -> None:
    bad = user_frame.astype({"tenure": object})
    bad.loc[5, "tenure"] = "twelve"
    with pytest.raises(Exception, match="tenure.*twelve"):
        served.predict(bad)


def test_signature_declares_every_feature(served: Any, user_frame: pd.DataFrame) -> None:
    schema = served.metadata.get_input_schema()
    assert set(schema.input_names()) == set(user_frame.columns) - {"rownames", "churn"}
    from mlflow.types.schema import AnyType, DataType

    types = {spec.name: spec.type for spec in schema.inputs}
    assert types["contract"] == DataType.string
    assert isinstance(types["tenure"], AnyType)
