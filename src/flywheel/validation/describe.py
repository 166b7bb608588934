"""Turn Great Expectations' per-expectation results into one readable sentence each.

GE reports counts and partial lists in a nested dict whose shape depends on the expectation;
the user needs "12 values out of range, e.g. -5.0". The wording follows `meta["check"]`,
set by `suite.build_suite`, so the sentence says which rule of the spec was broken.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from flywheel.data.spec import DatasetSpec
from flywheel.validation.report import Failure

MAX_EXAMPLES = 5
# The order failures of one column are listed in: the cause before its consequences.
CHECK_ORDER = [
    "row_count", "column_exists", "not_all_null", "not_null", "numeric_type", "range",
    "categories", "target_classes", "target_classes_present", "class_balance",
]


def failures_from_results(
    results: list[dict[str, Any]], spec: DatasetSpec, frame: pd.DataFrame
) -> list[Failure]:
    """Failures in spec order: table checks, then features, then the target.

    A range check on a column that is not numeric at all is a consequence of the type failure
    (GE cannot compare text with the bounds), so only the type failure is reported for it.
    """
    failed = [r for r in results if not r.get("success")]
    not_numeric = {_column(r) for r in failed if _check(r) == "numeric_type"}
    failed = [r for r in failed if not (_check(r) == "range" and _column(r) in not_numeric)]
    order: dict[str | None, int] = {None: -1}
    order.update((name, i) for i, name in enumerate([*spec.feature_names, spec.target]))
    failed.sort(key=lambda r: (
        order.get(_column(r), len(order)),
        CHECK_ORDER.index(_check(r)) if _check(r) in CHECK_ORDER else len(CHECK_ORDER),
    ))
    return [_failure(r, spec, frame) for r in failed]


def _check(result: dict[str, Any]) -> str:
    return str(((result.get("expectation_config") or {}).get("meta") or {}).get("check", ""))


def _column(result: dict[str, Any]) -> str | None:
    return ((result.get("expectation_config") or {}).get("kwargs") or {}).get("column")


def _failure(result: dict[str, Any], spec: DatasetSpec, frame: pd.DataFrame) -> Failure:
    config = result.get("expectation_config") or {}
    kwargs = config.get("kwargs") or {}
    column = kwargs.get("column")
    expectation = config.get("type", "unknown_expectation")
    error = _exception_message(result.get("exception_info"))
    if error is not None:
        details = f"could not be evaluated: {error}"
    else:
        check = (config.get("meta") or {}).get("check", "")
        details = _details(check, kwargs, result.get("result") or {}, config, spec, frame)
    return Failure(column=column, expectation=expectation, details=details)


def _details(
    check: str,
    kwargs: dict[str, Any],
    res: dict[str, Any],
    config: dict[str, Any],
    spec: DatasetSpec,
    frame: pd.DataFrame,
) -> str:
    column = kwargs.get("column")
    bad, seen = res.get("unexpected_count", 0), _non_missing(res)
    examples = _examples([c["value"] for c in res.get("partial_unexpected_counts") or []]
                         or res.get("partial_unexpected_list") or [])
    if check == "row_count":
        return (f"expected at least {kwargs.get('min_value')} rows, "
                f"found {res.get('observed_value')}")
    if check == "column_exists":
        known = {*spec.feature_names, spec.target, *spec.id_columns}
        unknown = [str(c) for c in frame.columns if c not in known]
        hint = f"; columns the spec does not name: {_listed(unknown)}" if unknown else ""
        role = "target column" if column == spec.target else "column"
        return f"{role} is missing from the table (the spec needs it){hint}"
    if check == "not_all_null":
        return "every value is null (expected at least some values)"
    if check == "not_null":
        return f"expected no nulls; {bad} of {res.get('element_count', '?')} values are null"
    if check == "numeric_type":
        return (f"expected a numeric dtype, found {res.get('observed_value', 'mixed values')}"
                f"{_non_numeric_examples(frame, column)}")
    if check == "range":
        return (f"expected {_bounds(kwargs)}; {bad} of {seen} values out of range"
                f"{examples}")
    if check == "categories":
        share = 1 - kwargs.get("mostly", 1.0)
        return (f"expected at most {share:.1%} values outside {kwargs.get('value_set')}; "
                f"{bad} of {seen} ({res.get('unexpected_percent', 0):.1f}%) are unknown{examples}")
    if check == "target_classes":
        return (f"expected only the classes {kwargs.get('value_set')}; "
                f"{bad} of {seen} values are something else{examples}")
    if check == "target_classes_present":
        absent = res.get("partial_missing_list") or res.get("details", {}).get("missing")
        return (f"expected every class of {kwargs.get('value_set')} to occur; "
                f"never seen: {absent}")
    if check == "class_balance":
        cls = (config.get("meta") or {}).get("cls")
        share = (seen - bad) / seen if seen else 0.0
        return (f"expected class {cls!r} to be at least {kwargs.get('mostly', 0):.1%} of rows; "
                f"it is {share:.1%} ({seen - bad} of {seen})")
    observed = {k: v for k, v in res.items() if not k.startswith("partial_")}
    return f"expected {kwargs}; observed {observed}"


def _non_missing(res: dict[str, Any]) -> int:
    return int(res.get("element_count", 0)) - int(res.get("missing_count", 0) or 0)


def _bounds(kwargs: dict[str, Any]) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    parts = [f"min {low:g}" if low is not None else "", f"max {high:g}" if high is not None else ""]
    return "values within " + ", ".join(p for p in parts if p)


def _examples(values: list[Any]) -> str:
    return f", e.g. {_listed(values)}" if values else ""


def _listed(values: list[Any]) -> str:
    unique = list(dict.fromkeys(values))
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in unique[:MAX_EXAMPLES])
    return shown + (", ..." if len(unique) > MAX_EXAMPLES else "")


def _non_numeric_examples(frame: pd.DataFrame, column: str | None) -> str:
    """Show the offending text, which is what a user greps the source file for."""
    if column is None or column not in frame.columns:
        return ""
    values = frame[column]
    text = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
    return _examples(list(text.astype(str).unique()[: MAX_EXAMPLES + 1]))


def _exception_message(info: Any) -> str | None:
    """GE nests exception info by metric id when a metric failed; find the first message."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None
