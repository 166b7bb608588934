"""The /predict request path's pieces: one decode, one validation, a log writer off the path."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def default_spec() -> Any:
    from flywheel.data.spec import load_spec

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    return load_spec(ROOT / params["data"]["spec"])


def a_record(spec: Any) -> dict[str, Any]:
    """A valid record: each numeric feature at its minimum, each category its first level."""
    return {f.name: (f.min if f.kind == "numeric" else (f.categories or ["x"])[0])
            for f in spec.features}


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (json.dumps([{"a": "[[[[", "b": 1}] * 100).encode(), False),
        (json.dumps({"a": [[[["x"]]]]}).encode(), False),
        (b"[" * 32 + b"]" * 32, False),
        (b"[" * 33 + b"]" * 33, True),
        (b"[" * 40 + b'{"a": 1}' + b"]" * 40, True),
        (b"[" * 50_000 + b"]" * 50_000, True),  # past orjson's own limit: the byte scan decides
        (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, True),
        (('["]",' * 40 + '"["' + ',"["]' * 40).encode(), True),
    ],
)
def test_decoding_first_refuses_the_same_deep_bodies_as_the_byte_scan(
        body: bytes, deep: bool) -> None:
    from flywheel.serving.limits import TooDeep, check_depth, parse_bounded

    for check in (check_depth, parse_bounded):
        if deep:
            with pytest.raises(TooDeep):
                check(body, 32)
        else:
            check(body, 32)


def test_bodies_orjson_refuses_are_left_to_the_standard_decoder() -> None:
    from flywheel.serving.limits import NOT_PARSED, parse_bounded
    from flywheel.serving.request_io import decode

    assert parse_bounded(b'[{"tenure": NaN}]', 32) is NOT_PARSED
    assert parse_bounded(b"not json", 32) is NOT_PARSED
    assert decode(b'[{"tenure": NaN}]')[0]["tenure"] != 0  # NaN: validation will refuse it
    with pytest.raises(ValueError):
        decode(b"not json")


def test_the_endpoint_schema_is_bentomls_own_and_validation_names_record_and_field() -> None:
    from _bentoml_sdk.io_models import ensure_io_descriptor
    from pydantic import ValidationError

    from flywheel.serving import schema
    from flywheel.serving.request_io import PARSED_BODY, Validated, records_input
    from flywheel.serving.request_schema import RequestSchema

    spec = default_spec()
    records = schema.records_type(schema.record_model(spec))
    serving = "the model serving"
    fast = records_input(lambda: (serving, RequestSchema(spec, schema.DEFAULT_MAX_CHARS)))
    assert fast.model_json_schema() == ensure_io_descriptor(records).model_json_schema()
    assert fast.model_json_schema(mode="serialization") == fast.model_json_schema(
        mode="serialization")  # cached, and a fresh copy each time
    fast.model_json_schema()["changed"] = True
    assert "changed" not in fast.model_json_schema()

    record = a_record(spec)

    class Request:  # what from_http_request reads: the scope the gate filled, or the body
        def __init__(self, body: bytes, parsed: Any = None) -> None:
            self.scope = {} if parsed is None else {PARSED_BODY: parsed}
            self._body = body

        async def body(self) -> bytes:
            return self._body

    one = asyncio.run(fast.from_http_request(Request(orjson.dumps(record)), None))
    assert one == [record]  # a single object is a batch of one
    assert isinstance(one, Validated) and one.model == serving  # the model that answers it
    parsed = asyncio.run(fast.from_http_request(Request(b"unused", [record, record]), None))
    assert parsed == [record, record]
    numeric = next(f.name for f in spec.features if f.kind == "numeric")
    with pytest.raises(ValidationError) as raised:
        asyncio.run(fast.from_http_request(Request(b"", [record, {**record, numeric: "x"}]),
                                           None))
    assert schema.describe_errors(raised.value.errors())[0]["record"] == 1
    assert schema.describe_errors(raised.value.errors())[0]["field"] == numeric


def test_the_log_writer_takes_pending_requests_in_bulk_and_bounds_them(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from flywheel.serving.inference_log import InferenceLog, LogEntry

    spec = default_spec()
    log = InferenceLog(tmp_path, spec, roll_rows=1_000, roll_seconds=60, queue_size=5)
    record = a_record(spec)
    answer = {"prediction": "yes", "probability": 0.5, "model_version": "1"}
    entry = LogEntry("r", datetime.now(UTC), orjson.dumps([record]), orjson.dumps([answer]))
    decoded = LogEntry("d", entry.time, entry.request_body, entry.response_body, [record])
    accepted = [log.submit(e) for e in [entry] * 4 + [decoded] + [entry] * 2]
    assert accepted == [True] * 5 + [False] * 2  # the writer has not started: all pend
    log.start()
    log.close()  # flushes what was pending
    files = list(tmp_path.glob("inference-*.parquet"))
    assert len(files) == 1
    table = pq.read_table(files[0])
    assert table.num_rows == 5
    assert table.column("request_id").to_pylist() == ["r"] * 4 + ["d"]


def test_the_log_writer_builds_one_table_per_poll_and_skips_an_odd_entry_alone(
        tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from flywheel.serving.inference_log import InferenceLog, LogEntry

    spec = default_spec()
    numeric = next(f.name for f in spec.features if f.kind == "numeric")
    log = InferenceLog(tmp_path, spec, roll_rows=1_000, roll_seconds=60, queue_size=100)
    record = a_record(spec)
    answer = {"prediction": "yes", "probability": 0.5, "model_version": "1"}
    entries = [LogEntry(f"r{i}", datetime.now(UTC), orjson.dumps([record, record]),
                        orjson.dumps([answer, answer])) for i in range(3)]
    odd = LogEntry("odd", datetime.now(UTC), orjson.dumps([{**record, numeric: "many"}]),
                   orjson.dumps([answer]))
    log._add(entries)
    assert len(log._tables) == 1 and log._buffered_rows == 6  # one table for the poll
    log._add([entries[0], odd, entries[1]])  # a value Arrow refuses fails the whole build...
    assert log._buffered_rows == 10 and log._buffered_requests == 5  # ...so only it is skipped
    log._flush()
    table = pq.read_table(next(tmp_path.glob("inference-*.parquet")))
    assert table.column("request_id").to_pylist() == (
        ["r0", "r0", "r1", "r1", "r2", "r2", "r0", "r0", "r1", "r1"])


def test_settling_the_heap_freezes_what_is_loaded_and_collects_what_is_not() -> None:
    import gc
    import weakref

    from flywheel.serving.heap import YOUNG_THRESHOLD, settle

    class Node:
        pass

    threshold = gc.get_threshold()
    try:
        garbage = Node()
        garbage.self = garbage  # type: ignore[attr-defined]  (a cycle only the collector frees)
        gone = weakref.ref(garbage)
        kept = {"model": [1, 2, 3]}
        del garbage
        settle()
        assert gone() is None
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # frozen: out of every pass
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
