"""Batch results merged into one table's: every verdict decided again on hand-added counts."""

from __future__ import annotations

from typing import Any

import pytest

from flywheel.validation.merge import merge_results


def _result(eid: str, kind: str, success: bool, result: dict[str, Any], **kwargs: Any) -> dict:
    return {"success": success, "result": result, "exception_info": {"raised_exception": False},
            "expectation_config": {"id": eid, "type": kind, "kwargs": kwargs, "meta": {}}}


def _batch(rows: int, *results: dict[str, Any]) -> dict[str, Any]:
    count = _result("rows", "expect_table_row_count_to_be_between", rows >= 500,
                    {"observed_value": rows}, min_value=500)
    return {"success": all(r["success"] for r in (count, *results)), "results": [count, *results],
            "statistics": {}, "suite_name": "s"}


def _in_set(success: bool, element: int, missing: int, unexpected: int,
            values: dict[str, int]) -> dict[str, Any]:
    return _result("cat", "expect_column_values_to_be_in_set", success, {
        "element_count": element, "missing_count": missing, "unexpected_count": unexpected,
        "partial_unexpected_list": list(values),
        "partial_unexpected_counts": [{"value": v, "count": c} for v, c in values.items()],
    }, column="contract", value_set=["a", "b"], mostly=0.99)


def _by_id(merged: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["expectation_config"]["id"]: r for r in merged["results"]}


def test_one_batch_is_its_own_result() -> None:
    raw = _batch(800)
    assert merge_results([raw]) is raw


def test_a_short_last_batch_passes_the_row_count_the_table_passes() -> None:
    merged = _by_id(merge_results([_batch(600), _batch(100)]))["rows"]
    assert merged["success"] is True and merged["result"] == {"observed_value": 700}
    assert _by_id(merge_results([_batch(300), _batch(100)]))["rows"]["success"] is False


def test_unknown_categories_are_judged_on_the_table_share() -> None:
    # batch 1: 20 of 1000 counted values unknown (2% > 1%: fails alone); batch 2: none of 2000.
    # table: 1000 + 2000 - (10 + 0) missing = 2990 counted, 20 unknown: 0.669% <= 1% passes.
    one = _batch(1010, _in_set(False, 1010, 10, 20, {"x": 15, "y": 5}))
    two = _batch(2000, _in_set(True, 2000, 0, 0, {}))
    merged = merge_results([one, two])
    cat = _by_id(merged)["cat"]
    assert cat["success"] is True and merged["success"] is True
    assert cat["result"]["element_count"] == 3010 and cat["result"]["missing_count"] == 10
    assert cat["result"]["unexpected_percent"] == pytest.approx(100 * 20 / 3000)
    assert cat["result"]["unexpected_percent_total"] == pytest.approx(100 * 20 / 3010)
    assert cat["result"]["partial_unexpected_counts"] == [{"value": "x", "count": 15},
                                                          {"value": "y", "count": 5}]
    assert merged["statistics"] == {"evaluated_expectations": 2, "successful_expectations": 2,
                                    "unsuccessful_expectations": 0, "success_percent": 100.0,
                                    "batches": 2}


def test_unknown_categories_spread_thin_still_fail_the_table() -> None:
    # 9 of 600 and 9 of 600 unknown: 1.5% each and 18 / 1200 = 1.5% > 1% for the table
    parts = [_batch(600, _in_set(False, 600, 0, 9, {"x": 9})) for _ in range(2)]
    cat = _by_id(merge_results(parts))["cat"]
    assert cat["success"] is False and cat["result"]["unexpected_count"] == 18
    assert cat["result"]["partial_unexpected_counts"] == [{"value": "x", "count": 18}]


def test_nulls_add_up_and_any_null_fails_a_not_null_column() -> None:
    def not_null(nulls: int) -> dict[str, Any]:
        return _result("nn", "expect_column_values_to_not_be_null", nulls == 0, {
            "element_count": 500, "unexpected_count": nulls, "partial_unexpected_list": []})

    merged = _by_id(merge_results([_batch(500, not_null(0)), _batch(500, not_null(2))]))["nn"]
    assert merged["success"] is False
    assert merged["result"]["unexpected_count"] == 2
    assert merged["result"]["unexpected_percent"] == pytest.approx(0.2)  # 2 of 1000 values


def test_a_class_is_absent_only_when_every_batch_lacks_it() -> None:
    def contains(missing: list[str]) -> dict[str, Any]:
        return _result("cls", "expect_column_distinct_values_to_contain_set", not missing,
                       {"observed_value": None, "partial_missing_list": missing},
                       column="churn", value_set=["No", "Yes"])

    seen = _by_id(merge_results([_batch(500, contains(["Yes"])), _batch(500, contains([]))]))
    assert seen["cls"]["success"] is True
    absent = merge_results([_batch(500, contains(["Yes"])), _batch(500, contains(["Yes"]))])
    assert _by_id(absent)["cls"]["success"] is False
    assert _by_id(absent)["cls"]["result"]["partial_missing_list"] == ["Yes"]


def test_non_null_share_is_weighted_by_batch_rows() -> None:
    def share(value: float) -> dict[str, Any]:
        return _result("nonnull", "expect_column_proportion_of_non_null_values_to_be_between",
                       value > 0, {"observed_value": value}, min_value=0.0, strict_min=True)

    # 600 rows all null, 400 rows a quarter non-null: (0 * 600 + 0.25 * 400) / 1000 = 0.1
    merged = _by_id(merge_results([_batch(600, share(0.0)), _batch(400, share(0.25))]))
    assert merged["nonnull"]["success"] is True
    assert merged["nonnull"]["result"]["observed_value"] == pytest.approx(0.1)
    empty = merge_results([_batch(600, share(0.0)), _batch(400, share(0.0))])
    assert _by_id(empty)["nonnull"]["success"] is False  # strict_min: 0 is not above 0


def test_a_dtype_failure_in_any_batch_fails_the_table() -> None:
    def dtype(observed: str) -> dict[str, Any]:
        return _result("type", "expect_column_values_to_be_in_type_list", observed == "float64",
                       {"observed_value": observed}, column="tenure", type_list=["float64"])

    merged = _by_id(merge_results([_batch(500, dtype("float64")), _batch(500, dtype("str"))]))
    assert merged["type"]["success"] is False
    assert merged["type"]["result"] == {"observed_value": "str"}
