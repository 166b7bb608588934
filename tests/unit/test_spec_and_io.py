"""Dataset specs, spec inference and table reading on small frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.data.infer import infer_spec
from flywheel.data.io import feature_frame, read_table, table_batches, target_vector
from flywheel.data.spec import DatasetSpec, load_spec, save_spec
from flywheel.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]


def small_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "age": rng.integers(18, 90, n),
            "plan": rng.choice(["basic", "pro", "max"], n),
            "active": rng.choice([0, 1], n),
            "spend": np.where(rng.random(n) < 0.05, np.nan, rng.gamma(2.0, 30.0, n)),
            "left": rng.choice(["no", "yes"], n, p=[0.8, 0.2]),
        }
    )


def test_infer_spec_types_ids_and_positive_class(tmp_path: Path) -> None:
    spec = infer_spec(small_frame(), target="left", path=tmp_path / "t.csv", name="t")
    assert spec.id_columns == ["customer_id"]
    assert spec.classes == ["no", "yes"] and spec.positive_class == "yes"
    kinds = {f.name: f.kind for f in spec.features}
    assert kinds == {
        "age": "numeric",
        "plan": "categorical",
        "active": "numeric",
        "spend": "numeric",
    }
    assert spec.feature("spend").nullable and not spec.feature("age").nullable
    assert spec.feature("active").min == 0 and spec.feature("active").max == 1
    assert spec.feature("plan").categories == ["basic", "max", "pro"]


def test_infer_spec_keeps_thousands_of_levels_but_not_free_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 12_000
    frame = pd.DataFrame(
        {
            "postcode": rng.choice([f"P{i}" for i in range(3000)], n),
            "comment": [f"note {i} {rng.integers(1_000_000)}" for i in range(n - 10)] + ["x"] * 10,
            "y": rng.choice(["no", "yes"], n),
        }
    )
    spec = infer_spec(frame, target="y", path=tmp_path / "t.csv", name="t")
    assert spec.feature_names == ["postcode"]
    assert len(spec.feature("postcode").categories or []) == frame["postcode"].nunique() > 2900
    assert spec.floors == {"roc_auc": 0.6}


def test_infer_spec_round_trips_through_yaml(tmp_path: Path) -> None:
    spec = infer_spec(small_frame(), target="left", path=tmp_path / "t.csv", name="t")
    save_spec(spec, tmp_path / "spec.yaml")
    assert load_spec(tmp_path / "spec.yaml") == spec


def test_infer_spec_rejects_a_single_class_and_a_missing_target(tmp_path: Path) -> None:
    frame = small_frame()
    frame["left"] = "a"
    with pytest.raises(DataError, match="need two classes"):
        infer_spec(frame, target="left", path=tmp_path / "t.csv", name="t")
    with pytest.raises(DataError, match="target column 'nope' not found"):
        infer_spec(frame, target="nope", path=tmp_path / "t.csv", name="t")


def test_spec_rejects_inconsistent_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\npath: x.csv\ntarget: y\nclasses: [a, b]\npositive_class: c\n"
        "features: [{name: f, kind: numeric}]\n"
    )
    with pytest.raises(ConfigError, match="positive_class 'c' is not in"):
        load_spec(bad)
    bad.write_text(
        "name: x\npath: x.csv\ntarget: y\nclasses: [a, b]\npositive_class: a\n"
        "features: [{name: f, kind: categorical}]\n"
    )
    with pytest.raises(ConfigError, match="categorical needs a list of categories"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00", "not a readable CSV"),
        (b"a,b\n", "no data rows"),
    ],
)
def test_read_table_names_the_problem(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "table.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_table(path)
    with pytest.raises(DataError, match=message):
        next(table_batches(path, rows=1000))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_table_batches_are_the_table_in_order(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"a": np.arange(2500, dtype="float64"), "plan": ["x", "y"] * 1250})
    path = tmp_path / f"t{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, row_group_size=700)  # batches cross row groups
    else:
        frame.to_csv(path, index=False)
    batches = list(table_batches(path, rows=1000))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    whole = pd.concat(batches, ignore_index=True)
    pd.testing.assert_frame_equal(whole, read_table(path))


def test_table_batches_name_a_bad_row_past_the_first_batch(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "1,2\n" * 1500 + "1,2,3,4\n")
    batches = table_batches(path, rows=1000)
    assert len(next(batches)) == 1000
    with pytest.raises(DataError, match="not a readable CSV table .*ParserError"):
        next(batches)



def test_read_table_rejects_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "table.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match="expected a .csv or .parquet"):
        read_table(path)


def test_feature_frame_casts_to_the_model_input(tmp_path: Path) -> None:
    frame = small_frame()
    spec = infer_spec(frame, target="left", path=tmp_path / "t.csv", name="t")
    features = feature_frame(spec, frame)
    assert list(features.columns) == spec.feature_names
    assert features["age"].dtype == "float64"
    assert pd.api.types.is_string_dtype(features["plan"])
    assert target_vector(spec, frame).sum() == (frame["left"] == "yes").sum()
    with pytest.raises(DataError, match="missing feature columns \\['plan'\\]"):
        feature_frame(spec, frame.drop(columns="plan"))


def test_default_spec_matches_default_table() -> None:
    spec = load_spec(REPO / "specs" / "wa_churn.yaml")
    assert isinstance(spec, DatasetSpec)
    assert spec.target == "churn" and spec.positive_class == "Yes"
    assert len(spec.features) == 19 and spec.id_columns == ["rownames"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_read_table_reads_only_the_columns_asked_for(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"a": [1, 2], "note": ["x", "y"], "y": ["No", "Yes"]})
    path = tmp_path / f"t{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    read = read_table(path, columns=["a", "y", "absent"])  # absent: left to require_columns
    assert list(read.columns) == ["a", "y"]


def test_target_vector_reads_numbers_and_text_alike() -> None:
    spec = DatasetSpec.model_validate(
        {"name": "t", "path": "t.csv", "target": "y", "classes": ["0", "1"],
         "positive_class": "1", "features": [{"name": "a", "kind": "numeric"}]}
    )  # fmt: skip
    for labels in ([0, 1, 1], [0.0, 1.0, 1.0], ["0", "1", "1"]):
        assert target_vector(spec, pd.DataFrame({"y": labels})).tolist() == [0, 1, 1]
    with pytest.raises(DataError, match="blanks"):
        target_vector(spec, pd.DataFrame({"y": [0.0, np.nan]}))
    with pytest.raises(DataError, match="'2'"):
        target_vector(spec, pd.DataFrame({"y": [0, 2]}))
