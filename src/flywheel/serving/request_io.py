"""`/predict`'s body in and answers out, with one validation pass and no per-request schema work.

BentoML's default IO descriptor regenerates the endpoint's JSON schema (building pydantic
`TypeAdapter`s) on every request, once for the input and once for the output, then decodes
with the standard `json` module and serializes the answers through pydantic again. On a
one-record request that was about two thirds of the service's own time. The descriptor built
here documents and validates against the schema of the model serving now (each loaded model
carries its own, built once: serving/request_schema.py), so `/docs.json`, the OpenAPI document
and the 4xx answers follow a champion that takes other columns. It validates the records in one
pydantic pass on the body the gate decoded (with orjson) already and hands them on with the
model they were validated for, which is the one that answers them; answers go out as orjson
bytes in a ready `Response`, which BentoML passes through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import PydanticCustomError
from starlette.responses import Response

from flywheel.serving.request_schema import RequestSchema

# ASGI scope key under which the gate leaves the body it decoded already (flywheel.serving.gate).
PARSED_BODY = "flywheel.parsed_body"
# ... and the model it routed the request to, when not the champion (serving/canary.py).
ROUTED_MODEL = "flywheel.routed_model"


class Validated(list):  # type: ignore[type-arg]
    """Records validated against one model's schema, and that model (None: none loaded yet)."""

    def __init__(self, records: list[Any], model: Any) -> None:
        super().__init__(records)
        self.model = model


def records_input(current: Callable[[], tuple[Any, RequestSchema]]) -> Any:
    """A BentoML input spec following `current()`: (the model serving now, its schema).

    `current` is read once per request, so one version both validates and answers it.
    """
    from _bentoml_sdk.io_models import ensure_io_descriptor

    base: Any = ensure_io_descriptor(current()[1].records)

    class RecordsInput(base):  # type: ignore[misc, valid-type]
        __root_input__ = True

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return current()[1].json_schema(*args, **kwargs)

        @classmethod
        async def from_http_request(cls, request: Any, serde: Any) -> Any:
            # A plain list (not the root model): BentoML passes it on as the argument.
            routed = request.scope.get(ROUTED_MODEL)
            model, schema = (routed, routed.request_schema) if routed else current()
            if PARSED_BODY in request.scope:
                return Validated(schema.validate(request.scope[PARSED_BODY]), model)
            return Validated(schema.validate(decode(await request.body())), model)

    RecordsInput.__name__ = RecordsInput.__qualname__ = base.__name__
    return RecordsInput


def decode(body: bytes) -> Any:
    """orjson first; the standard module for what orjson refuses but Python's JSON accepts.

    orjson rejects `NaN`/`Infinity`, which the stdlib reads as floats: those bodies must reach
    validation and get a 422 naming the field (not finite), as before. Anything neither
    accepts raises `ValueError`, which the gate turns into a 400. The stdlib also accepts lone
    surrogates (`"\\ud800"`), which are not text: they get a 422 naming record and field here,
    before they can reach (and fail) a model call shared with other clients' records.
    """
    try:
        return orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        value = json.loads(body or b"{}")
    refuse_lone_surrogates(value)
    return value


def refuse_lone_surrogates(value: Any) -> None:
    """`ValidationError` (record, field) for the first string that is not valid Unicode."""
    records = value if isinstance(value, list) else [value]
    for index, record in enumerate(records):
        fields = record.items() if isinstance(record, dict) else [("", record)]
        for name, field in fields:
            if _has_surrogate(name) or _has_surrogate(field):
                where = (index, name) if isinstance(record, dict) else (index,)
                raise ValidationError.from_exception_data("Records", [{
                    "type": PydanticCustomError(
                        "not_unicode", "text is not valid Unicode (a lone surrogate)"),
                    "loc": where,
                    "input": None,
                }])


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list):
        return any(map(_has_surrogate, value))
    if isinstance(value, dict):
        return any(map(_has_surrogate, value)) or any(map(_has_surrogate, value.values()))
    return False


def json_response(answers: Any) -> Response:
    """Answers as JSON bytes; BentoML sends a `Response` as is, past its output serializer."""
    return Response(orjson.dumps(answers), media_type="application/json")
