"""The expectation suite, derived from the dataset spec so the checks and the spec never disagree.

Each expectation carries `meta["check"]`, naming which rule of the spec it enforces; the report
uses it to word failures (a class-balance check and a target-values check are both
`expect_column_values_to_be_in_set` to Great Expectations, but mean different things to a user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel.config import ValidateParams
from flywheel.data.spec import DatasetSpec
from flywheel.validation.html_safe import escaped, escaped_list

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

# Numpy dtype names plus pandas' nullable extension dtypes by class name: Great Expectations
# resolves "Int64Dtype" through `pd.Int64Dtype` but not "Int64", so the spelling matters.
NUMERIC_DTYPES: tuple[str, ...] = (
    *(f"int{bits}" for bits in (8, 16, 32, 64)),
    *(f"uint{bits}" for bits in (8, 16, 32, 64)),
    "float16", "float32", "float64",
    *(f"Int{bits}Dtype" for bits in (8, 16, 32, 64)),
    *(f"UInt{bits}Dtype" for bits in (8, 16, 32, 64)),
    "Float32Dtype", "Float64Dtype",
)


def suite_name(spec: DatasetSpec) -> str:
    return f"{spec.name}_suite"


def build_suite(
    spec: DatasetSpec, params: ValidateParams, present: set[str] | None = None
) -> ExpectationSuite:
    """All checks the spec implies; column checks only for columns in `present`.

    Columns missing from the table keep their `expect_column_to_exist` (which fails cleanly)
    but not their value checks, which Great Expectations would fail with a metric-resolution
    traceback instead of a sentence. `present=None` means every column is there.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    def here(column: str) -> bool:
        return present is None or column in present

    # Collected, then handed to the suite at once: `add_expectation` compares each new one with
    # every one before it through pydantic (over a second for ~90 expectations), to drop
    # duplicates this list cannot have.
    expectations: list[Any] = []
    add = expectations.append

    add(gxe.ExpectTableRowCountToBeBetween(min_value=params.min_rows, meta=_meta("row_count")))
    for column in [*spec.feature_names, spec.target]:
        add(gxe.ExpectColumnToExist(column=column, meta=_meta("column_exists")))

    for feature in spec.features:
        if not here(feature.name):
            continue
        name = feature.name
        # Nullable or not, a column with no values at all is a broken extract, not sparse data.
        add(gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(
            column=name, min_value=0.0, strict_min=True, meta=_meta("not_all_null")))
        if not feature.nullable:
            add(gxe.ExpectColumnValuesToNotBeNull(column=name, meta=_meta("not_null")))
        if feature.kind == "numeric":
            add(gxe.ExpectColumnValuesToBeInTypeList(
                column=name, type_list=list(NUMERIC_DTYPES), meta=_meta("numeric_type")))
            if feature.min is not None or feature.max is not None:
                add(gxe.ExpectColumnValuesToBeBetween(
                    column=name, min_value=feature.min, max_value=feature.max,
                    meta=_meta("range")))
        else:
            add(gxe.ExpectColumnValuesToBeInSet(
                column=name, value_set=escaped_list(list(feature.categories or [])),
                mostly=params.category_mostly, meta=_meta("categories")))

    if here(spec.target):
        target = spec.target
        add(gxe.ExpectColumnValuesToNotBeNull(column=target, meta=_meta("not_null")))
        classes = escaped_list(list(spec.classes or []))
        add(gxe.ExpectColumnValuesToBeInSet(
            column=target, value_set=classes, meta=_meta("target_classes")))
        add(gxe.ExpectColumnDistinctValuesToContainSet(
            column=target, value_set=classes, meta=_meta("target_classes_present")))
        # "Share of class c >= f" is "at least f of the values are in {c}": in-set with mostly.
        for cls in spec.classes or []:
            add(gxe.ExpectColumnValuesToBeInSet(
                column=target, value_set=[escaped(cls)], mostly=params.min_class_fraction,
                meta=_meta("class_balance", cls=cls)))
    return gx.ExpectationSuite(name=suite_name(spec), expectations=expectations)


def _meta(check: str, **extra: Any) -> dict[str, Any]:
    return {"check": check, **extra}
