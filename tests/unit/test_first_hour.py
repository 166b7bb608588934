"""Small parts of a first hour without surprises (issue 20): the example record the Swagger page
sends, the port check every server command runs first, the OpenAPI completion."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.data.spec import DatasetSpec, FeatureSpec
from flywheel.errors import PortInUse
from flywheel.ports import require_free_port
from flywheel.serving.openapi import complete
from flywheel.serving.schema import example_record, record_model
from tests.conftest import REPO


def _spec() -> DatasetSpec:
    return DatasetSpec(
        name="toy", path="toy.csv", target="y", classes=["no", "yes"], positive_class="yes",
        features=[
            FeatureSpec(name="flag", kind="numeric", min=0, max=1),
            FeatureSpec(name="months", kind="numeric", min=0, max=121),
            FeatureSpec(name="charge", kind="numeric", min=0.5, max=2.0),
            FeatureSpec(name="open", kind="numeric", nullable=True),
            FeatureSpec(name="plan", kind="categorical", categories=["basic", "pro"]),
        ],
    )


def test_the_example_record_is_valid_and_names_known_categories() -> None:
    from pydantic import TypeAdapter

    example = example_record(_spec())
    # (0+1)/2 -> 0 and (0+121)/2 -> 60 whole (integer bounds); (0.5+2)/2 = 1.25; no bounds: 0.
    assert example == {"flag": 0, "months": 60, "charge": 1.25, "open": 0.0, "plan": "basic"}
    record = record_model(_spec())
    assert TypeAdapter(record).validate_python(example) == example
    assert TypeAdapter(record).json_schema()["example"] == example


def test_a_port_someone_listens_on_is_refused_naming_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(PortInUse, match=f"flywheel ui: port {port} on 127.0.0.1 is already"):
            require_free_port("127.0.0.1", port, "flywheel ui")
    require_free_port("127.0.0.1", port, "flywheel ui")  # closed again: free


def test_an_unknown_host_is_one_line() -> None:
    with pytest.raises(PortInUse, match="cannot listen on 'no-such-host.invalid'"):
        require_free_port("no-such-host.invalid", 3000, "flywheel serve")


def test_the_document_gets_its_info_and_the_routes_bentoml_left_out() -> None:
    bentoml_doc = {"info": {"title": "flywheel", "version": "None",
                            "description": "![b](https://img.shields.io/x)"},
                   "paths": {"/predict": {}}}
    document = complete(bentoml_doc, None, "flywheel-churn", ["No", "Yes"])
    assert document["info"]["version"] != "None" and "shields" not in str(document)
    assert "flywheel-churn@champion" in document["info"]["description"]
    assert set(document["paths"]) == {"/predict", "/metadata", "/feedback", "/predict_image"}


def test_a_model_pickles_to_the_same_bytes_in_any_process(tmp_path: Path) -> None:
    """String hashes, so set order, differ per process (PYTHONHASHSEED): the file must not."""
    script = (
        "import sys, numpy as np; from sklearn.linear_model import LogisticRegression;"
        "from flywheel.model import TabularModel, save_model;"
        "from tests.unit.test_first_hour import _spec;"
        "est = LogisticRegression().fit(np.array([[0.0], [1.0], [0.2], [0.9]]), [0, 1, 0, 1]);"
        "save_model(TabularModel(spec=_spec(), transformer=None, estimator=est,"
        " candidate='logreg', threshold=0.5, params={'tags': {'a', 'b', 'c'}}),"
        " __import__('pathlib').Path(sys.argv[1]))"
    )
    for seed in ("1", "2"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{seed}.pkl")],
                       env={**os.environ, "PYTHONHASHSEED": seed}, cwd=REPO, check=True)
    assert (tmp_path / "1.pkl").read_bytes() == (tmp_path / "2.pkl").read_bytes()


def test_a_model_with_empty_arrays_pickles_stably() -> None:
    """Protocol 5's buffers of two empty arrays tripped Python's pickler (model.py)."""
    import pickle

    import numpy as np

    from flywheel.model import model_bytes

    data = model_bytes({"a": np.zeros(0), "b": np.zeros(0), "s": {"y", "x"}})  # type: ignore[arg-type]
    back = pickle.loads(data)
    assert back["a"].shape == (0,) and back["s"] == {"x", "y"}
