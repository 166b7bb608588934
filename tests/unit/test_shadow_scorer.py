"""The challenger's scoring on a stub: one call for what piled up, errors per request.

The stub is a pyfunc whose predict raises when any record has `tenure` 119 (valid input): scored
together with good requests, a bad one must not make them count as errors.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from flywheel.config import load_params
from flywheel.data.spec import load_spec
from flywheel.serving.registry_watch import LoadedModel
from flywheel.serving.schema_swap import SchemaSwap
from flywheel.serving.shadow_scoring import challenger_answers
from tests.conftest import REPO
from tests.integration.serving.conftest import sample_records


class StubPyfunc:
    def __init__(self) -> None:
        self.calls = 0

    def unwrap_python_model(self) -> Any:
        raise TypeError("not one of ours")

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        if (frame["tenure"] == 119).any():
            raise ValueError("tenure 119")
        return pd.DataFrame({"prediction": ["No"] * len(frame), "probability": [0.25] * len(frame)})


def _challenger(pyfunc: StubPyfunc) -> LoadedModel:
    spec = load_spec(REPO / load_params(REPO / "params.yaml").data.spec)
    schema = SchemaSwap(spec, 256, "swap").fallback
    return LoadedModel(pyfunc=pyfunc, name="m", version="2", request_schema=schema)


def test_piled_up_requests_are_one_call_and_errors_stay_with_their_request() -> None:
    good = sample_records()[:3]
    pyfunc = StubPyfunc()
    model = _challenger(pyfunc)
    outcomes = challenger_answers(model, [good[0], good[1:3]])
    assert pyfunc.calls == 1
    assert [len(a or []) for a, _ in outcomes] == [1, 2]
    assert all(reason is None for _, reason in outcomes)

    bad = {**good[0], "tenure": 119}
    invalid = {**good[0], "tenure": "many"}
    pyfunc.calls = 0
    outcomes = challenger_answers(model, [good[0], bad, invalid])
    assert [reason for _, reason in outcomes] == [None, "predict", "invalid"]
    assert outcomes[0][0] == [{"prediction": "No", "probability": 0.25,
                               "probabilities": {"No": 0.75, "Yes": 0.25}, "model_version": "2",
                               "git_commit": "unknown", "data_md5": "unknown"}]
    assert pyfunc.calls == 3  # the shared call, then each valid request alone
