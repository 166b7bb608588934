"""Stable splits: a row's side is a function of the row alone (features/split.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.config import FeaturizeParams, load_params
from flywheel.data.io import feature_frame, read_table, target_vector
from flywheel.data.spec import load_spec
from flywheel.errors import DataError
from flywheel.features.split import (
    SplitRule,
    assign,
    split_frame,
    split_rows,
    split_rule,
    trained_on,
    unit_hash,
)

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
SPEC = load_spec(REPO / PARAMS.data.spec)
M64 = 2**64 - 1


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """The default churn table (`make install-test` puts it in data/), as featurize reads it."""
    raw = read_table(REPO / SPEC.path)
    return pd.concat(
        [feature_frame(SPEC, raw).assign(__target__=target_vector(SPEC, raw)), raw["rownames"]],
        axis=1,
    )


def _mix(x: int) -> int:
    """SplitMix64's finalizer in plain Python integers: the reference for the numpy one."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _u(cells: list[int], seed: int) -> float:
    h = _mix((seed + 0x9E3779B97F4A7C15) & M64)
    for cell in cells:
        h = _mix(h ^ cell)
    return (h >> 11) / 2**53


def test_hash_of_a_number_and_a_text_is_pinned_by_hand() -> None:
    # 7.0 is 0x401C000000000000 in IEEE 754; "abc" is the first 8 bytes of its BLAKE2b, LE.
    abc = int.from_bytes(hashlib.blake2b(b"abc", digest_size=8).digest(), "little")
    frame = pd.DataFrame({"id": [7], "name": ["abc"]})
    expected_id, expected_both = _u([0x401C000000000000], 42), _u([0x401C000000000000, abc], 42)
    assert unit_hash(frame, ["id"], 42)[0] == expected_id
    assert unit_hash(frame, ["id", "name"], 42)[0] == expected_both
    # ...and as literals, so a change of scheme can never pass silently.
    assert expected_id == pytest.approx(0.9010908048188, abs=1e-15)
    assert expected_both == pytest.approx(0.7379985680565391, abs=1e-15)


def test_cells_hash_by_value_not_by_dtype() -> None:
    ints = pd.DataFrame({"k": [1, 0, 2]})
    floats = pd.DataFrame({"k": [1.0, -0.0, 2.0]})  # a NaN arriving later makes ints floats
    assert np.array_equal(unit_hash(ints, ["k"], 1), unit_hash(floats, ["k"], 1))
    nans = pd.DataFrame({"k": [np.nan, float("nan") * -1]})
    assert unit_hash(nans, ["k"], 1)[0] == unit_hash(nans, ["k"], 1)[1]
    texts = pd.DataFrame({"k": ["a", None]}, dtype="str")
    assert unit_hash(texts, ["k"], 1)[1] == _u([0], 1)  # a missing text is the cell 0
    assert not np.array_equal(unit_hash(ints, ["k"], 1), unit_hash(ints, ["k"], 2))  # salted


def test_v2_on_the_whole_table_tests_no_row_v1_trained_on(table: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    part = table.iloc[rng.permutation(len(table))[: int(0.9 * len(table))]]  # 90%, shuffled
    v1 = split_rule(SPEC, PARAMS.featurize, part)
    v2 = split_rule(SPEC, PARAMS.featurize, table)
    v2_test = table.iloc[split_rows(table, table["__target__"].to_numpy(), v2)["test"]]
    seen_by_v1 = set(part["rownames"][trained_on(part, v1.to_dict())])
    assert len(v2_test) > 1000
    assert seen_by_v1.isdisjoint(v2_test["rownames"])
    assert not trained_on(v2_test, v1).any()  # the mask the gate uses says the same


def test_content_keyed_split_numbers_copies_and_appending_moves_no_row(
    table: pd.DataFrame,
) -> None:
    spec = SPEC.model_copy(update={"id_columns": []})
    content = table.drop(columns="rownames")
    rule = split_rule(spec, PARAMS.featurize, content)
    assert rule.key_columns == [*SPEC.feature_names, "__target__"] and rule.copies
    codes = assign(content, rule)
    single = ~content.duplicated(keep=False).to_numpy()
    assert (~single).sum() > 10  # the default table has exact duplicates
    # a row with no copy keeps the plain content hash: the rule before copy numbers
    plain = assign(content, SplitRule(**{**rule.to_dict(), "copies": False}))
    assert np.array_equal(codes[single], plain[single])
    # appended rows, copies of old ones included, move no old row
    grown = pd.concat([content, content.iloc[:500]], ignore_index=True)
    assert np.array_equal(assign(grown, rule)[: len(content)], codes)
    # reordered: rows with no copy keep their side; each copy group keeps its sides' counts
    shuffled = content.sample(frac=1.0, random_state=3)
    after = pd.Series(assign(shuffled, rule), index=shuffled.index).sort_index().to_numpy()
    assert np.array_equal(after[single], codes[single])
    groups = [content[c] for c in content.columns]
    assert (pd.Series(after).groupby(groups).value_counts().sort_index()
            .equals(pd.Series(codes).groupby(groups).value_counts().sort_index()))


def test_copies_of_a_row_are_split_like_other_rows_not_cut_by_label() -> None:
    """40 feature vectors, 20,000 rows: without copy numbers each (vector, label) cell goes
    whole to one side, so a side holds a vector's positives or its negatives; with them each
    side keeps every vector's own positive rate (0.2 or 0.8), up to binomial noise."""
    rng = np.random.default_rng(0)
    vector = rng.integers(0, 40, 20_000)
    y = (rng.random(20_000) < 0.2 + 0.6 * (vector % 2)).astype(int)
    frame = pd.DataFrame({"x": vector, "__target__": y})
    rule = SplitRule(method="hash", key_columns=["x", "__target__"], seed=0, test_size=0.2,
                     valid_size=0.2, copies=True)
    for copies, biased in ((False, True), (True, False)):
        codes = assign(frame, SplitRule(**{**rule.to_dict(), "copies": copies}))
        test = codes == 2
        rates = pd.Series(y[test]).groupby(vector[test]).mean().reindex(range(40))
        truth = 0.2 + 0.6 * (np.arange(40) % 2)
        # 500 rows a vector, ~100 in test: 4 standard errors of a rate is at most 0.2
        off = (rates.fillna(-1) - truth).abs() > 0.2
        assert off.any() == biased


def test_reordering_rows_or_columns_changes_no_assignment(table: pd.DataFrame) -> None:
    rule = split_rule(SPEC, PARAMS.featurize, table)
    before = pd.Series(assign(table, rule), index=table["rownames"])
    reordered = table.sample(frac=1.0, random_state=1)[table.columns[::-1]]
    after = pd.Series(assign(reordered, rule), index=reordered["rownames"])
    assert after.sort_index().equals(before.sort_index())


def test_shares_and_class_balance_stay_within_binomial_bounds(table: pd.DataFrame) -> None:
    """Stratification in expectation: each class's share of each split is binomial around the
    configured share; 4 standard errors bound it (a 1-in-15,000 miss per check)."""
    y = table["__target__"].to_numpy()
    codes = assign(table, split_rule(SPEC, PARAMS.featurize, table))
    cfg = PARAMS.featurize
    for code, share in ((2, cfg.test_size), (1, cfg.valid_size)):
        for rows in (np.ones_like(y, bool), y == 1, y == 0):
            realised = np.mean(codes[rows] == code)
            assert abs(realised - share) <= 4 * np.sqrt(share * (1 - share) / rows.sum())


def test_out_of_time_split_puts_the_latest_rows_in_test() -> None:
    n = 1000
    frame = pd.DataFrame(
        {
            "at": pd.date_range("2024-01-01", periods=n, freq="h").astype(str),
            "x": np.arange(n, dtype=float),
            "__target__": np.arange(n) % 3 == 0,
        }
    )
    params = PARAMS.featurize.model_copy(update={"split_by": "at"})
    rule = split_rule(SPEC, params, frame)
    rows = split_rows(frame, frame["__target__"].to_numpy(), rule)
    assert rows["test"].min() > rows["valid"].max() > rows["train"].max()
    assert len(rows["test"]) == 200 and len(rows["valid"]) == 200
    grown = pd.concat([frame, frame.assign(at=pd.Timestamp("2030-01-01").isoformat())])
    later = split_rule(SPEC, params, grown)
    recorded = json.loads(json.dumps(rule.to_dict()))
    assert not trained_on(grown[assign(grown, later) == 2], recorded).any()


def test_split_frame_and_rule_round_trip(table: pd.DataFrame) -> None:
    rule = split_rule(SPEC, PARAMS.featurize, table)
    again = SplitRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert again == rule
    parts = split_frame(table, table["__target__"].to_numpy(), rule)
    assert sum(len(p) for p in parts.values()) == len(table)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"test_size": 0.5, "valid_size": 0.45}, "under 10% of rows to train on"),
        ({"split_by": "nope"}, "featurize.split_by: column 'nope' not in the table"),
    ],
)
def test_bad_split_settings_fail_with_one_line(change: dict, message: str) -> None:
    params = FeaturizeParams(**{**PARAMS.featurize.model_dump(), **change})
    with pytest.raises(DataError, match=message):
        split_rule(SPEC, params, pd.DataFrame({"x": [1.0]}))


def test_missing_keys_and_one_class_splits_fail_with_one_line() -> None:
    rule = split_rule(SPEC, PARAMS.featurize, pd.DataFrame())
    with pytest.raises(DataError, match=r"split key column\(s\) 'rownames' not in the table"):
        assign(pd.DataFrame({"x": [1]}), rule)
    few = pd.DataFrame({"rownames": range(40)})
    with pytest.raises(DataError, match="split has .* rows and 0 positives; it needs both"):
        split_rows(few, np.zeros(40, dtype=int), rule)
    with pytest.raises(DataError, match="scheme 'md5' unknown"):
        SplitRule.from_dict({**rule.to_dict(), "scheme": "md5"})
