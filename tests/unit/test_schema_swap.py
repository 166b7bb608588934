"""A new champion's request schema: swapped in with it, or refused under serve.schema_change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def default_spec() -> Any:
    from flywheel.data.spec import load_spec

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    return load_spec(ROOT / params["data"]["spec"])


def wider(spec: Any) -> Any:
    """The same table with one more numeric feature."""
    from flywheel.data.spec import FeatureSpec

    extra = FeatureSpec(name="tenure_years", kind="numeric", min=0, max=10)
    return spec.model_copy(update={"features": [*spec.features, extra]})


def model(version: str, spec: Any) -> Any:
    """A loaded model whose own spec is `spec` (what LoadedModel.spec reads from its files)."""
    from flywheel.serving.registry_watch import LoadedModel

    loaded = LoadedModel(pyfunc=None, name="churn", version=version)
    loaded.__dict__["spec"] = spec  # the cached_property's slot: no pickled model needed here
    return loaded


def test_schema_changes_name_added_removed_and_changed_fields_not_descriptions() -> None:
    from flywheel.serving.request_schema import RequestSchema, schema_changes

    spec = default_spec()
    base = RequestSchema(spec, 256)
    assert schema_changes(base, RequestSchema(spec, 256)) == ""
    assert schema_changes(base, RequestSchema(wider(spec), 256)) == "added: tenure_years"
    assert schema_changes(RequestSchema(wider(spec), 256), base) == "removed: tenure_years"
    relabelled = spec.model_copy(update={"features": [
        f.model_copy(update={"categories": [*f.categories, "Maybe"]})
        if f.name == "contract" else f for f in spec.features]})
    assert schema_changes(base, RequestSchema(relabelled, 256)) == ""  # prose only
    narrower = spec.model_copy(update={"features": [
        f.model_copy(update={"max": 60.0}) if f.name == "tenure" else f
        for f in spec.features]})
    assert schema_changes(base, RequestSchema(narrower, 256)) == "changed: tenure"


def test_swap_pairs_the_model_with_its_own_schema_and_reuses_equal_ones() -> None:
    from flywheel.serving.schema_swap import SchemaSwap

    spec = default_spec()
    swap = SchemaSwap(spec, 256, "swap")
    v1 = swap.prepare(model("1", spec), None)
    assert v1.request_schema is swap.fallback  # same spec: built once
    v2 = swap.prepare(model("2", wider(spec)), v1)
    assert "tenure_years" in v2.request_schema.fields
    assert v2.metadata()["features"] == [*spec.feature_names, "tenure_years"]
    assert swap.prepare(model("3", None), v2).request_schema is swap.fallback  # not ours


def test_refuse_keeps_the_old_schema_unless_nothing_is_serving() -> None:
    from flywheel.serving.request_schema import SchemaRefused
    from flywheel.serving.schema_swap import SchemaSwap

    spec = default_spec()
    swap = SchemaSwap(spec, 256, "refuse")
    first = swap.prepare(model("1", wider(spec)), None)  # a cold start takes any schema
    assert "tenure_years" in first.request_schema.fields
    same = swap.prepare(model("2", wider(spec)), first)
    assert same.request_schema is first.request_schema
    with pytest.raises(SchemaRefused, match=r"version 3 .*removed: tenure_years.*'refuse'"):
        swap.prepare(model("3", spec), first)


def test_validation_follows_the_schema_of_the_model_that_answers() -> None:
    from pydantic import ValidationError

    from flywheel.serving.request_schema import RequestSchema
    from flywheel.serving.schema import describe_errors

    spec = default_spec()
    record = {f.name: (f.min if f.kind == "numeric" else f.categories[0]) for f in spec.features}
    wide = RequestSchema(wider(spec), 256)
    assert wide.validate([{**record, "tenure_years": 3}])[0]["tenure_years"] == 3
    with pytest.raises(ValidationError) as raised:
        wide.validate([{**record, "tenure_years": 3}, record])
    (first,) = describe_errors(raised.value.errors())
    assert (first["record"], first["field"], first["type"]) == (1, "tenure_years", "missing")


def test_the_inference_log_takes_the_new_champions_columns_in_files_of_their_own(
        tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import orjson
    import pyarrow.parquet as pq

    from flywheel.serving.inference_log import InferenceLog, LogEntry

    spec = default_spec()
    record = {f.name: (f.min if f.kind == "numeric" else f.categories[0]) for f in spec.features}
    answer = {"prediction": "No", "probability": 0.1, "model_version": "1"}

    def entry(request_id: str, body: dict[str, Any], version: str) -> LogEntry:
        return LogEntry(request_id, datetime.now(UTC), orjson.dumps([body]),
                        orjson.dumps([{**answer, "model_version": version}]))

    log = InferenceLog(tmp_path, spec, roll_rows=1_000, roll_seconds=60, queue_size=10)
    log._add([entry("old", record, "1")])
    log.use_spec(spec)  # the same columns: nothing to switch
    assert log._next_spec is None
    log.use_spec(wider(spec))
    log._switch(log._next_spec)  # what the writer does at its next poll
    log._add([entry("new", {**record, "tenure_years": 4}, "2")])
    log._flush()
    old, new = (pq.read_table(path) for path in sorted(tmp_path.glob("inference-*.parquet")))
    assert "tenure_years" not in old.column_names
    assert old.column("request_id").to_pylist() == ["old"]
    assert new.column("tenure_years").to_pylist() == [4.0]


def test_personal_marks_of_the_configured_spec_survive_a_swap() -> None:
    from flywheel.serving.schema_swap import SchemaSwap

    spec = default_spec()
    marked = spec.model_copy(update={"features": [
        f.model_copy(update={"pii": True}) if f.name == "payment_method" else f
        for f in spec.features]})
    swap = SchemaSwap(marked, 256, "swap")
    same = swap.prepare(model("1", spec), None)  # its own copy lacks the operator's mark
    assert same.request_schema is swap.fallback
    wide = swap.prepare(model("2", wider(spec)), same).request_schema
    assert {f.name for f in wide.spec.features if f.pii} == {"payment_method"}
