"""Corrupted tables: random bytes, truncations, wrong encodings, huge fields.

The reader either returns a frame or raises `DataError` naming the file, never anything else.
Through the CLI (tests/integration/test_corrupted_tables_cli.py) every such file ends in one
line and exit code 3 (data) or 4 (validation).
"""

from __future__ import annotations

import io
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.data.io import read_table
from flywheel.errors import DataError

REPO = Path(__file__).resolve().parents[2]
TALLY: Counter[str] = Counter()


def valid_csv() -> bytes:
    path = REPO / "data" / "wa_churn.csv"
    if not path.is_file():
        pytest.skip("data/wa_churn.csv is not in place (run `flywheel pull-data`)")
    return b"".join(path.read_bytes().splitlines(keepends=True)[:120])


def valid_parquet(csv: bytes) -> bytes:
    buffer = io.BytesIO()
    pd.read_csv(io.BytesIO(csv)).to_parquet(buffer, index=False)
    return buffer.getvalue()


def read_or_data_error(content: bytes, suffix: str) -> pd.DataFrame | None:
    """What the property demands: a frame, or a DataError naming the file; nothing else."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"table{suffix}"
        path.write_bytes(content)
        try:
            return read_table(path)
        except DataError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            return None


FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(blob=st.binary(max_size=4096), suffix=st.sampled_from([".csv", ".parquet"]))
def test_random_bytes(blob: bytes, suffix: str) -> None:
    TALLY["random bytes"] += 1
    read_or_data_error(blob, suffix)


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".csv", ".parquet"]))
def test_truncated_and_bit_flipped_files(data: st.DataObject, suffix: str) -> None:
    csv = valid_csv()
    valid = csv if suffix == ".csv" else valid_parquet(csv)
    cut = data.draw(st.integers(0, len(valid)))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, max(cut - 1, 0)), st.integers(0, 255)), max_size=8)
    )
    content = bytearray(valid[:cut])
    for at, value in flips:
        if at < len(content):
            content[at] = value
    TALLY["truncated / bit-flipped"] += 1
    read_or_data_error(bytes(content), suffix)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1", "cp1252", "utf-8-sig"])
def test_wrong_encodings(encoding: str) -> None:
    text = valid_csv().decode().replace("Month-to-month", "Mois-à-mois")
    TALLY["wrong encodings"] += 1
    read_or_data_error(text.encode(encoding), ".csv")


@pytest.mark.parametrize(
    "content",
    [
        b"a,b\n" + b"x" * 20_000_000 + b",1\n",  # one 20 MB field
        b",".join(b"c%d" % i for i in range(50_000)) + b"\n" + b"1," * 49_999 + b"1\n",
        b'a,b\n"' + b"never closed" * 1000 + b"\n",
        b"\x00" * 100_000,
        b"a,b\n1,2\n" * 3 + b"\xff\xfe\xfd\n",
    ],
    ids=["huge field", "50k columns", "unclosed quote", "nul bytes", "bad bytes at the end"],
)
def test_huge_and_malformed_fields(content: bytes) -> None:
    TALLY["huge / malformed fields"] += 1
    read_or_data_error(content, ".csv")
