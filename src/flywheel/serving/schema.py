"""Request and response models of `/predict`, generated from the dataset spec.

The endpoint's schema is derived from the same spec that validation and featurization read, so
the three cannot disagree (docs/architecture.md, principle 4), and BentoML shows it in `/docs.json`.
Unseen categories are accepted on purpose: the transformer ignores them, and the service counts
them instead of turning a new product name into an outage.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field
from typing_extensions import TypedDict

from flywheel.data.spec import DatasetSpec, FeatureSpec

# Bounded set of reasons for `flywheel_invalid_requests_total`; pydantic error types map onto it.
INVALID_REASONS = (
    "too_large", "not_json", "empty", "missing_field", "unknown_field", "wrong_type",
    "not_finite", "out_of_range", "too_long", "not_unicode", "foreign_host", "unauthorized",
    "too_slow", "other",
)
_REASON_BY_ERROR_TYPE = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "finite_number": "not_finite",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "too_short": "empty",
    "string_too_long": "too_long",
    "not_unicode": "not_unicode",
}
# Longest category value accepted when the spec gives none (`max_length` of a feature): real
# category names are short, and a long one costs memory in every log row that holds it.
DEFAULT_MAX_CHARS = 256


def _field(feature: FeatureSpec, max_chars: int) -> tuple[Any, Any]:
    if feature.kind == "numeric":
        described = f"numeric, {feature.min} to {feature.max}"
        base: Any = Annotated[float, Field(ge=feature.min, le=feature.max, allow_inf_nan=False)]
    else:
        # A known category is never refused, whatever the default says.
        known = max(map(len, feature.categories or [""]))
        longest = feature.max_length or max(max_chars, known)
        described = (f"category, one of {feature.categories} (others are accepted and counted), "
                     f"at most {longest} characters")
        base = Annotated[str, Field(max_length=longest)]
    if feature.nullable:
        return base | None, Field(default=None, description=f"{described}; may be null")
    return base, Field(description=described)


def record_model(spec: DatasetSpec, max_chars: int = DEFAULT_MAX_CHARS) -> Any:
    """One input record: the spec's features, typed and bounded; unknown fields are refused.

    Every category value is bounded: the feature's `max_length` in the spec, else `max_chars`.

    A TypedDict validated by pydantic rather than a `create_model` BaseModel: the same checks
    and JSON schema, but it validates to plain dicts, about 3x faster on a 10,000-row request,
    and the scorer needs dicts anyway.
    """
    fields = {feature.name: _field(feature, max_chars) for feature in spec.features}
    record = TypedDict(  # type: ignore[misc]
        "Record", {name: Annotated[kind, info] for name, (kind, info) in fields.items()})
    record.__pydantic_config__ = ConfigDict(  # type: ignore[attr-defined]
        extra="forbid", title="Record", json_schema_extra={"example": example_record(spec)})
    record.__doc__ = f"One record of the {spec.name!r} dataset, as named fields."
    return record


def example_record(spec: DatasetSpec) -> dict[str, Any]:
    """A record the spec accepts with no unseen category: what the Swagger page sends.

    Its first known category per categorical, the middle of each numeric range (whole when
    both bounds are: a 0-1 flag stays a flag). Without it the page sent "string" for every
    category, got a meaningless 200 and counted each as unseen.
    """
    return {feature.name: _example_value(feature) for feature in spec.features}


def _example_value(feature: FeatureSpec) -> Any:
    if feature.kind == "categorical":
        return (feature.categories or [""])[0]
    low, high = feature.min, feature.max
    if low is None or high is None:
        return low if low is not None else (high if high is not None else 0.0)
    middle = (low + high) / 2
    return int(middle) if float(low).is_integer() and float(high).is_integer() else middle


def _as_list(value: Any) -> Any:
    """A single JSON object is a batch of one; batching needs a list along dimension 0."""
    return [value] if isinstance(value, dict) else value


def records_type(record: Any) -> Any:
    """The body of `/predict`: one record or a non-empty list of them."""
    return Annotated[
        list[record],  # type: ignore[valid-type]
        # Stop at the first bad record: 20,000 empty records would otherwise build 380,000
        # errors and hold the worker for seconds; the answer names the first one anyway.
        Field(min_length=1, fail_fast=True),
        BeforeValidator(_as_list, json_schema_input_type=record | list[record]),  # type: ignore[valid-type]
    ]


class Lineage(TypedDict):
    """What traces an answer back to its model and data."""

    model_version: Annotated[str, Field(description="registry version that answered")]
    git_commit: Annotated[str, Field(description="commit the model was trained from")]
    data_md5: Annotated[str, Field(description="hash of the training data (DVC md5)")]


Probabilities = Annotated[dict[str, float], Field(
    description="probability of each class, keyed by class label (they sum to 1)")]


class Prediction(Lineage):
    """The answer for one record of a binary task, with the lineage that traces it back."""

    prediction: Annotated[str, Field(description="predicted class label")]
    probability: Annotated[float, Field(description="probability of the positive class")]
    probabilities: Probabilities


class ClassPrediction(Lineage):
    """The answer for one record of a multiclass task, with its lineage."""

    prediction: Annotated[str, Field(description="predicted class label (the likeliest)")]
    probabilities: Probabilities


class ValuePrediction(Lineage):
    """The answer for one record of a regression task, with its lineage."""

    prediction: Annotated[float, Field(description="predicted value of the target")]


_ANSWER_TYPES = {"binary": Prediction, "multiclass": ClassPrediction,
                 "regression": ValuePrediction}


def prediction_type(spec: DatasetSpec) -> Any:
    """The answer type of `/predict` for the spec's task (what `/docs.json` documents)."""
    return _ANSWER_TYPES[spec.task]


def invalid_reason(errors: list[dict[str, Any]]) -> str:
    """Map the first pydantic error of a rejected request onto the bounded reason set."""
    if not errors:
        return "other"
    kind = str(errors[0].get("type", ""))
    if kind in _REASON_BY_ERROR_TYPE:
        return _REASON_BY_ERROR_TYPE[kind]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "wrong_type"
    return "other"


def describe_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Name record and field for each error (pydantic's `loc` is ('root', index, field))."""
    described = []
    for err in errors:
        loc = [part for part in err.get("loc", ()) if part != "root"]
        record = next((part for part in loc if isinstance(part, int)), None)
        field = next((part for part in loc if isinstance(part, str)), None)
        described.append({
            "record": record,
            "field": field,
            "type": err.get("type"),
            "msg": err.get("msg"),
        })
    return described
