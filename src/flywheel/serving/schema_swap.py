"""What happens when a new champion takes other columns: `serve.schema_change`.

`swap` (the default): the model is paired with its own request schema before it is swapped in,
so validation, the OpenAPI document and `/metadata` change in the same instant as the model;
one line says which fields changed. `refuse`: the model is not swapped in (`SchemaRefused`, one
log line, `flywheel_model_reloads_total{outcome="schema_refused"}`) and the one serving now
keeps serving, until the alias moves again or the service restarts. The first model a service
loads is always accepted: there is nothing to keep serving.
"""

from __future__ import annotations

import dataclasses
import logging

from flywheel.data.spec import DatasetSpec
from flywheel.serving.registry_watch import LoadedModel
from flywheel.serving.request_schema import REFUSE, RequestSchema, SchemaRefused, schema_changes

logger = logging.getLogger(__name__)


class SchemaSwap:
    """Pairs each loaded model with its request schema, or refuses a change under `refuse`."""

    def __init__(self, fallback: DatasetSpec, max_chars: int, on_change: str) -> None:
        self.max_chars = max_chars
        self.on_change = on_change
        # The schema of a model that carries no spec of its own (any pyfunc that is not ours).
        self.fallback = RequestSchema(fallback, max_chars)
        self._built: dict[str, RequestSchema] = {self._key(fallback): self.fallback}

    def schema_of(self, spec: DatasetSpec | None) -> RequestSchema:
        """One `RequestSchema` per distinct spec; the configured one for the same fields.

        A model that accepts the same requests as the spec the service was started with keeps
        that spec (and its `pii` marks, which an operator may have added to the registered
        file); one that takes other fields brings its own, with those marks carried over.
        """
        if spec is None:
            return self.fallback
        key = self._key(spec)
        if key not in self._built:
            request = RequestSchema(_keeping_pii(self.fallback.spec, spec), self.max_chars)
            same = not schema_changes(self.fallback, request)
            self._built[key] = self.fallback if same else request
        return self._built[key]

    def prepare(self, model: LoadedModel, current: LoadedModel | None) -> LoadedModel:
        """`model` carrying its request schema; `SchemaRefused` when it differs under refuse."""
        request = self.schema_of(model.spec)
        if current is not None:
            changes = schema_changes(current.request_schema or self.fallback, request)
            if changes and self.on_change == REFUSE:
                raise SchemaRefused(
                    f"{model.name} version {model.version} takes other request fields than "
                    f"version {current.version} ({changes}) and serve.schema_change is "
                    f"'{REFUSE}': not swapped in")
            if changes:
                logger.warning("%s version %s changes the request schema (%s); requests are "
                               "validated against it from now on", model.name, model.version,
                               changes)
        return dataclasses.replace(model, request_schema=request)

    @staticmethod
    def _key(spec: DatasetSpec) -> str:
        return spec.model_dump_json()


def _keeping_pii(configured: DatasetSpec, spec: DatasetSpec) -> DatasetSpec:
    """`spec` with every feature the configured spec marks personal marked personal too."""
    marked = {f.name for f in configured.features if f.pii}
    if not marked:
        return spec
    return spec.model_copy(update={"features": [
        f.model_copy(update={"pii": True}) if f.name in marked else f for f in spec.features]})
