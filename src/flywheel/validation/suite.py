"""The expectation suite, derived from the dataset spec so the checks and the spec never disagree.

Each expectation carries `meta["check"]`, naming which rule of the spec it enforces; the report
uses it to word failures (a class-balance check and a target-values check are both
`expect_column_values_to_be_in_set` to Great Expectations, but mean different things to a user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel.config import ValidateParams
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import task_of
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
    params = image_bounds(spec, params)

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
        expectations += _target_expectations(spec, params)
    return gx.ExpectationSuite(name=suite_name(spec), expectations=expectations)


def image_bounds(spec: DatasetSpec, params: ValidateParams) -> ValidateParams:
    """An image folder's size and balance are its spec's `image:` rules, not the tables'
    `validate` bounds (500 rows, 5% a class would refuse 300 photos, or 20 classes a few
    images short of even): at least `min_per_class` a class, and the smallest share the
    `max_imbalance` bound allows, 1 / (1 + (classes - 1) x max_imbalance)."""
    if spec.image is None:
        return params
    classes = len(spec.classes or [])
    return params.model_copy(update={
        "min_rows": spec.image.min_per_class * classes,
        "min_class_fraction": 1 / (1 + (classes - 1) * spec.image.max_imbalance),
    })


def _target_expectations(spec: DatasetSpec, params: ValidateParams) -> list[Any]:
    """Never null; a class target holds only, and every one of, its classes, each at least
    `min_class_fraction` of the rows (for any number of classes); a regression target is numbers.
    """
    import great_expectations.expectations as gxe

    target = spec.target
    checks: list[Any] = [gxe.ExpectColumnValuesToNotBeNull(column=target, meta=_meta("not_null"))]
    if not task_of(spec).is_classification:
        checks.append(gxe.ExpectColumnValuesToBeInTypeList(
            column=target, type_list=list(NUMERIC_DTYPES), meta=_meta("numeric_type")))
        return checks
    classes = escaped_list(list(spec.classes or []))
    checks.append(gxe.ExpectColumnValuesToBeInSet(
        column=target, value_set=classes, meta=_meta("target_classes")))
    checks.append(gxe.ExpectColumnDistinctValuesToContainSet(
        column=target, value_set=classes, meta=_meta("target_classes_present")))
    # "Share of class c >= f" is "at least f of the values are in {c}": in-set with mostly.
    checks += [
        gxe.ExpectColumnValuesToBeInSet(
            column=target, value_set=[escaped(cls)], mostly=params.min_class_fraction,
            meta=_meta("class_balance", cls=cls))
        for cls in spec.classes or []
    ]
    return checks


def _meta(check: str, **extra: Any) -> dict[str, Any]:
    return {"check": check, **extra}
