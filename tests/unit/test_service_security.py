"""The service's security pieces on their own: token scopes and the local token file, the Host
allow-list, escaped log text, bounded strings, lone surrogates, retention and label compaction.
The same behaviour through a real `bentoml serve` is in tests/integration/serving/test_security.py.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from flywheel.data.spec import DatasetSpec, FeatureSpec
from flywheel.errors import ConfigError
from flywheel.serving.guard import host_allowed, parse_allowed_hosts
from flywheel.serving.logsafe import untrusted
from flywheel.serving.privacy import enforce_retention
from flywheel.serving.request_io import decode
from flywheel.serving.schema import record_model, records_type
from flywheel.tokens import ADMIN, FEEDBACK, PREDICT, ScopeTokens, local_tokens, scope_tokens

# --- tokens ----------------------------------------------------------------------------------


def test_local_tokens_are_generated_once_owner_only_and_shared(tmp_path: Path) -> None:
    path = tmp_path / ".flywheel" / "tokens.json"
    with ThreadPoolExecutor(8) as pool:  # eight "workers" starting at once
        seen = list(pool.map(lambda _: local_tokens(path), range(8)))
    assert all(tokens == seen[0] for tokens in seen)
    assert set(seen[0]) == {FEEDBACK, ADMIN} and seen[0][FEEDBACK] != seen[0][ADMIN]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["tokens.json"]  # no temp files left


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    local_tokens(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others.*chmod 600"):
        local_tokens(path)
    path.chmod(0o600)
    path.write_text("{}")
    with pytest.raises(ConfigError, match="not a token file"):
        local_tokens(path)


def test_scopes_come_from_the_environment_first_then_the_file(tmp_path: Path) -> None:
    env = {"FLYWHEEL_API_TOKEN": "p" * 20, "FLYWHEEL_FEEDBACK_TOKEN": "f" * 20}
    tokens = scope_tokens(tmp_path, env=env)
    assert tokens.predict == "p" * 20 and tokens.feedback == "f" * 20
    assert tokens.admin == local_tokens(tmp_path / ".flywheel/tokens.json")[ADMIN]
    opened = scope_tokens(tmp_path, env={})
    assert opened.is_open(PREDICT) and not opened.is_open(FEEDBACK)
    with pytest.raises(ConfigError, match="FLYWHEEL_FEEDBACK_TOKEN equals FLYWHEEL_API_TOKEN"):
        scope_tokens(tmp_path, env={"FLYWHEEL_API_TOKEN": "s" * 20,
                                    "FLYWHEEL_FEEDBACK_TOKEN": "s" * 20})


def test_a_predict_token_cannot_label_and_admin_may_do_everything() -> None:
    tokens = ScopeTokens(predict="p" * 20, feedback="f" * 20, admin="a" * 20)

    def bearer(token: str) -> bytes:
        return f"Bearer {token}".encode()

    assert tokens.allows(PREDICT, bearer("p" * 20))
    assert not tokens.allows(FEEDBACK, bearer("p" * 20))
    assert not tokens.allows(ADMIN, bearer("f" * 20))
    assert all(tokens.allows(scope, bearer("a" * 20)) for scope in (PREDICT, FEEDBACK, ADMIN))
    assert not tokens.allows(FEEDBACK, b"") and not tokens.allows(FEEDBACK, bearer("f" * 19))


# --- Host ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "allowed"), [
    (b"127.0.0.1:3000", True),
    (b"localhost:3000", True),
    (b"LOCALHOST:3000", True),
    (b"[::1]:3000", True),
    (b"127.0.0.1:3001", False),  # another port: another service's page
    (b"localhost", False),  # port 80 implied
    (b"evil.example:3000", False),  # DNS rebinding
    (b"127.0.0.1.nip.io:3000", False),
    (b"", False),
    (b"flywheel.internal", True),  # allow-listed name, any port
    (b"flywheel.internal:8443", True),
    (b"gateway:8080", True),  # allow-listed name:port
    (b"gateway:8081", False),
])
def test_host_header_must_name_this_service(host: bytes, allowed: bool) -> None:
    listed = parse_allowed_hosts(" flywheel.internal, Gateway:8080 ,")
    assert host_allowed(host, ("127.0.0.1", 3000), listed) is allowed


def test_the_address_a_request_arrived_on_is_its_own_host() -> None:
    assert host_allowed(b"10.1.2.3:3000", ("10.1.2.3", 3000), frozenset())
    assert not host_allowed(b"10.1.2.4:3000", ("10.1.2.3", 3000), frozenset())


# --- untrusted text --------------------------------------------------------------------------


def test_untrusted_text_is_one_short_escaped_line() -> None:
    hostile = "a\nWARNING forged line\x1b[31m[bold]\ud800" + "x" * 900_000
    started = time.perf_counter()
    shown = untrusted(hostile)
    assert time.perf_counter() - started < 0.01
    assert "\n" not in shown and "\x1b" not in shown and shown.isascii()
    assert len(shown) < 300 and shown.endswith(f"({len(hostile)} chars)")
    assert "\\ud800" in shown and "\\n" in shown


# --- bounded input ---------------------------------------------------------------------------


def _spec(max_length: int | None = None) -> DatasetSpec:
    return DatasetSpec(
        name="t", path=Path("t.csv"), target="y", classes=["No", "Yes"], positive_class="Yes",
        features=[FeatureSpec(name="plan", kind="categorical", categories=["basic", "pro"],
                              max_length=max_length),
                  FeatureSpec(name="n", kind="numeric", min=0, max=10)])


def test_category_values_are_length_limited_by_spec_or_default() -> None:
    default = TypeAdapter(records_type(record_model(_spec(), max_chars=8)))
    assert default.validate_python([{"plan": "x" * 8, "n": 1}])
    with pytest.raises(ValidationError) as caught:
        default.validate_python([{"plan": "x" * 9, "n": 1}])
    assert caught.value.errors()[0]["type"] == "string_too_long"
    from_spec = TypeAdapter(records_type(record_model(_spec(max_length=5), max_chars=8)))
    with pytest.raises(ValidationError):
        from_spec.validate_python([{"plan": "x" * 6, "n": 1}])
    with pytest.raises(ValueError, match="longer than max_length"):
        _spec(max_length=3)  # "basic" itself would be refused
    known = TypeAdapter(records_type(record_model(_spec(), max_chars=2)))
    assert known.validate_python([{"plan": "basic", "n": 1}])  # a known category always passes


def test_lone_surrogates_are_refused_naming_record_and_field() -> None:
    body = json.dumps([{"plan": "basic", "n": 1}, {"plan": "\ud800", "n": 1}]).encode()
    with pytest.raises(ValidationError) as caught:
        decode(body)
    (error,) = caught.value.errors()
    assert error["loc"] == (1, "plan") and error["type"] == "not_unicode"
    assert decode(json.dumps({"plan": "合同 💥", "n": float("nan")}).encode())["plan"] == "合同 💥"


# --- what is kept ----------------------------------------------------------------------------


def test_retention_never_deletes_the_newest_file_and_warns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = time.time()
    for name, age in (("inference-1.parquet", 3), ("inference-2.parquet", 2),
                      ("inference-3.parquet", 1)):
        (tmp_path / name).write_bytes(b"x" * 5000)
        os.utime(tmp_path / name, (now - age,) * 2)
    with caplog.at_level(logging.WARNING, logger="flywheel.serving.privacy"):
        removed = enforce_retention(tmp_path, max_age_s=86400, max_bytes=1024,
                                    keep=tmp_path / "inference-2.parquet")
    assert [p.name for p in removed] == ["inference-1.parquet"]  # each alone is over the cap
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inference-2.parquet",
                                                          "inference-3.parquet"]
    assert "deleted 1 file(s)" in caplog.text and "inference-1.parquet" in caplog.text


def test_label_files_are_compacted_to_the_latest_label_per_request(tmp_path: Path) -> None:
    from flywheel.monitoring.feedback import read_feedback
    from flywheel.serving.feedback_store import FEEDBACK_GLOB, store_labels

    for n in range(10):
        frame = pd.DataFrame({"request_id": [f"r{n % 4}"], "label": ["Yes" if n < 8 else "No"]})
        store_labels(tmp_path, frame, max_files=3, max_age_s=86400)
        assert len(list(tmp_path.glob(FEEDBACK_GLOB))) <= 4
    latest = read_feedback(tmp_path).set_index("request_id")["label"].to_dict()
    assert latest == {"r0": "No", "r1": "No", "r2": "Yes", "r3": "Yes"}  # r0, r1 relabelled


def test_compaction_drops_labels_past_the_age_limit(tmp_path: Path) -> None:
    from flywheel.serving.feedback_store import compact

    old = datetime.now(UTC) - timedelta(days=40)
    for n in range(3):
        pd.DataFrame({"request_id": [f"old{n}"], "label": ["No"],
                      "received_at": pd.Series([old], dtype="datetime64[us, UTC]")}
                     ).to_parquet(tmp_path / f"feedback-old-{n}.parquet", index=False)
    pd.DataFrame({"request_id": ["new"], "label": ["Yes"],
                  "received_at": pd.Series([datetime.now(UTC)], dtype="datetime64[us, UTC]")}
                 ).to_parquet(tmp_path / "feedback-new.parquet", index=False)
    path = compact(tmp_path, max_files=2, max_age_s=30 * 86400)
    assert path is not None and [p.name for p in tmp_path.glob("*.parquet")] == [path.name]
    assert pd.read_parquet(path)["request_id"].tolist() == ["new"]
