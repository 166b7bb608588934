"""The request schema a served model carries: its validator and its OpenAPI schema, built once.

Each model the service loads brings the dataset spec it was trained on; a new champion may take
other columns than the one it replaces. So the schema is not fixed at import: every loaded model
is paired with its own `RequestSchema` when it is loaded (off the request path), the pair is
swapped in as one reference, and a request is validated against the model that will answer it.
Under `serve.schema_change: refuse` a champion whose schema differs is not swapped in at all
(`SchemaRefused`), and the model serving now keeps serving.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import TypeAdapter

from flywheel.data.spec import DatasetSpec
from flywheel.serving import schema

SWAP = "swap"
REFUSE = "refuse"


class SchemaRefused(Exception):
    """A new champion's request schema differs and serve.schema_change is `refuse`."""


class RequestSchema:
    """One spec's records type, its validator and its (cached) JSON schema."""

    def __init__(self, spec: DatasetSpec, max_chars: int) -> None:
        from _bentoml_sdk.io_models import ensure_io_descriptor

        self.spec = spec
        self.record = schema.record_model(spec, max_chars)
        self.records = schema.records_type(self.record)
        self.adapter = TypeAdapter(self.records)
        self._json_schema = functools.lru_cache(maxsize=16)(
            ensure_io_descriptor(self.records).model_json_schema)
        self.fields = _validated_fields(self.record)
        # What its answers look like: a champion of another task (or other classes) answers
        # other fields, and a client reading the old ones would break as surely.
        self.answers = f"{spec.task} {spec.classes}" if spec.classes else spec.task

    def json_schema(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The body's JSON schema as BentoML documents it; a copy the caller may change."""
        return copy.deepcopy(self._json_schema(*args, **kwargs))

    def validate(self, value: Any) -> list[Any]:
        """The records as plain dicts, or pydantic's `ValidationError` naming record and field."""
        return self.adapter.validate_python(value)  # type: ignore[no-any-return]


def _validated_fields(record: Any) -> dict[str, Any]:
    """What validation checks per field (type, bounds, nullability, required), not the prose.

    Descriptions list the known categories, which a retrain may change without changing what
    a request may contain (unseen categories are accepted anyway).
    """
    document = TypeAdapter(record).json_schema()
    required = set(document.get("required", []))
    return {
        name: ({k: v for k, v in prop.items() if k not in ("description", "title")},
               name in required)
        for name, prop in document.get("properties", {}).items()
    }


def schema_changes(old: RequestSchema, new: RequestSchema) -> str:
    """'' when both accept the same requests and answer alike, else which fields were added,
    removed, changed, and how the answers changed (another task or other classes)."""""
    added = sorted(set(new.fields) - set(old.fields))
    removed = sorted(set(old.fields) - set(new.fields))
    changed = sorted(name for name in set(old.fields) & set(new.fields)
                     if old.fields[name] != new.fields[name])
    parts = [f"{what}: {', '.join(names)}" for what, names in
             (("added", added), ("removed", removed), ("changed", changed)) if names]
    if old.answers != new.answers:
        parts.append(f"answers: {old.answers} -> {new.answers}")
    return "; ".join(parts)
