"""One Great Expectations result for a table validated batch by batch, as if it were read whole.

A table larger than memory is validated in batches (validation/run.py), each against the same
suite; a batch's verdict is not the table's: the last batch may hold fewer than `min_rows`
rows, 1% unknown categories in one batch may be 0.1% of the table, a class absent from one
batch may be in the next. So every expectation's counts are added up over the batches and its
verdict decided again on the sums, by the rule Great Expectations applies to one frame:

- row count: the sum of the batches' rows, against the bounds;
- share of non-null values: non-null values over rows, summed, against the bounds;
- values not null / in a set / between bounds: unexpected values over the values counted
  (non-missing ones where GE counts missing ones apart), at least `mostly` (1 when absent)
  expected; no counted value at all passes, as in GE;
- distinct values contain a set: a value is missing from the table when every batch lacks it;
- column exists, dtype in a list: every batch must pass (a batch with text in a numeric
  column fails the table, as the whole read would).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

EXAMPLES = 5  # partial lists kept, as RESULT_FORMAT asks of each batch


def merge_results(raws: list[dict[str, Any]]) -> dict[str, Any]:
    """The batches' result dicts (`to_json_dict()` of one suite's runs) as one table's."""
    if len(raws) == 1:
        return raws[0]
    rows = [_row_count(raw) for raw in raws]
    by_id = [{r["expectation_config"]["id"]: r for r in raw["results"]} for raw in raws]
    results = [
        _merged([parts[r["expectation_config"]["id"]] for parts in by_id], rows)
        for r in raws[0]["results"]
    ]
    passed = sum(bool(r["success"]) for r in results)
    statistics = {
        "evaluated_expectations": len(results),
        "successful_expectations": passed,
        "unsuccessful_expectations": len(results) - passed,
        "success_percent": 100.0 * passed / len(results) if results else 100.0,
        "batches": len(raws),
    }
    return {**raws[0], "success": passed == len(results), "results": results,
            "statistics": statistics}


def _row_count(raw: dict[str, Any]) -> int:
    (count,) = [r["result"]["observed_value"] for r in raw["results"]
                if r["expectation_config"]["type"] == "expect_table_row_count_to_be_between"]
    return int(count)


def _merged(parts: list[dict[str, Any]], rows: list[int]) -> dict[str, Any]:
    """One expectation's results over the batches (parts[i] from the batch of rows[i] rows)."""
    broken = [p for p in parts if (p.get("exception_info") or {}).get("raised_exception")]
    if broken:
        return broken[0]  # could not be evaluated on a batch: not on the table either
    kind = parts[0]["expectation_config"]["type"]
    kwargs = parts[0]["expectation_config"]["kwargs"]
    results = [p.get("result") or {} for p in parts]
    if "unexpected_count" in results[0]:
        result = _counted(results, kwargs)
        success = _mostly(result, kwargs)
    elif kind == "expect_table_row_count_to_be_between":
        result = {"observed_value": sum(rows)}
        success = _within(sum(rows), kwargs)
    elif kind == "expect_column_proportion_of_non_null_values_to_be_between":
        share = sum(r["observed_value"] * n for r, n in zip(results, rows, strict=True)) / sum(rows)
        result = {"observed_value": share}
        success = _within(share, kwargs)
    elif kind == "expect_column_distinct_values_to_contain_set":
        absent = set.intersection(*(set(r.get("partial_missing_list") or []) for r in results))
        result = {"observed_value": None, "missing_count": len(absent),
                  "partial_missing_list": sorted(absent)}
        success = not absent
    else:
        failed = [p for p in parts if not p["success"]]
        return failed[0] if failed else parts[0]
    return {**parts[0], "success": success, "result": result}


def _counted(results: list[dict[str, Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Counts added up; percentages and partial lists recomputed over the table."""
    element = sum(int(r.get("element_count", 0)) for r in results)
    unexpected = sum(int(r.get("unexpected_count", 0)) for r in results)
    counts: Counter[Any] = Counter()
    for r in results:
        counts.update({c["value"]: c["count"] for c in r.get("partial_unexpected_counts") or []})
    merged: dict[str, Any] = {
        "element_count": element,
        "unexpected_count": unexpected,
        "partial_unexpected_list": [v for r in results
                                    for v in r.get("partial_unexpected_list") or []][:EXAMPLES],
        "partial_unexpected_counts": [{"value": v, "count": c}
                                      for v, c in counts.most_common(EXAMPLES)],
    }
    if "missing_count" in results[0]:
        missing = sum(int(r.get("missing_count", 0)) for r in results)
        merged["missing_count"] = missing
        merged["missing_percent"] = _percent(missing, element)
        merged["unexpected_percent_total"] = _percent(unexpected, element)
        merged["unexpected_percent_nonmissing"] = _percent(unexpected, element - missing)
        merged["unexpected_percent"] = merged["unexpected_percent_nonmissing"]
    else:
        merged["unexpected_percent"] = _percent(unexpected, element)
    return merged


def _mostly(result: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    counted = result["element_count"] - result.get("missing_count", 0)
    if counted == 0:
        return True
    return bool((counted - result["unexpected_count"]) / counted >= (kwargs.get("mostly") or 1.0))


def _within(value: float, kwargs: dict[str, Any]) -> bool:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    above = low is None or (value > low if kwargs.get("strict_min") else value >= low)
    below = high is None or (value < high if kwargs.get("strict_max") else value <= high)
    return above and below


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0
