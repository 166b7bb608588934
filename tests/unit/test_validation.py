"""The validation step on tiny frames: each kind of bad data fails, naming its column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.atomic import replacing_dir
from flywheel.config import ValidateParams
from flywheel.data.spec import DatasetSpec
from flywheel.errors import DataError
from flywheel.validation import Failure, ValidationReport, validate_frame

ROWS = 40

SPEC = DatasetSpec.model_validate({
    "name": "tiny",
    "path": "data/tiny.csv",
    "target": "churn",
    "classes": ["No", "Yes"],
    "positive_class": "Yes",
    "id_columns": ["id"],
    "features": [
        {"name": "tenure", "kind": "numeric", "min": 0, "max": 120},
        {"name": "charges", "kind": "numeric", "nullable": True, "min": 0, "max": 500},
        {"name": "contract", "kind": "categorical", "categories": ["Monthly", "Yearly"]},
        {"name": "plan", "kind": "categorical", "nullable": True, "categories": ["1", "2"]},
    ],
})
PARAMS = ValidateParams(min_rows=20, category_mostly=0.9, min_class_fraction=0.2)


def good_frame() -> pd.DataFrame:
    """40 rows that satisfy SPEC; `plan` is int-coded, as a CSV reader would load it."""
    rng = np.random.default_rng(0)
    charges = rng.uniform(10, 400, ROWS).round(2)
    charges[3] = np.nan  # nullable: a few blanks are fine
    return pd.DataFrame({
        "id": range(ROWS),
        "tenure": rng.integers(0, 100, ROWS),
        "charges": charges,
        "contract": ["Monthly", "Yearly"] * (ROWS // 2),
        "plan": [1, 2, 2, 1] * (ROWS // 4),
        "churn": ["No", "No", "Yes", "No"] * (ROWS // 4),
    })


def run(frame: pd.DataFrame, out: Path) -> ValidationReport:
    """As the validate step calls it: Data Docs into the folder, the record saved beside them."""
    with replacing_dir(out / "validation") as staging:
        report, record = validate_frame(SPEC, frame, PARAMS, staging / "docs")
        (staging / "result.json").write_text(json.dumps(record, default=str))
    return report


def failed(report: ValidationReport, column: str | None, expectation: str) -> Failure:
    """The one failure for (column, expectation); the assertion message shows the summary."""
    found = [f for f in report.failures if (f.column, f.expectation) == (column, expectation)]
    assert not report.success, report.summary()
    assert found, f"no {expectation} failure on {column!r} in:\n{report.summary()}"
    return found[0]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ValidationReport, Path]:
    """Validated once per module: the first call also pays the Great Expectations import."""
    out = tmp_path_factory.mktemp("good")
    return run(good_frame(), out), out / "validation"


def test_good_frame_passes_and_writes_outputs(good_run: tuple[ValidationReport, Path]) -> None:
    report, out = good_run
    assert report.success, report.summary()
    assert report.failures == []
    assert report.suite_name == "tiny_suite"
    assert report.statistics["rows"] == ROWS
    assert report.statistics["unsuccessful_expectations"] == 0
    assert "passed" in report.summary()
    saved = json.loads((out / "result.json").read_text())
    assert saved["success"] is True and saved["ge_result"]["success"] is True
    assert (out / "docs" / "index.html").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["validation"]  # no staging leftovers


def test_report_is_json_ready(good_run: tuple[ValidationReport, Path]) -> None:
    report, _ = good_run
    assert json.loads(json.dumps(report.to_dict()))["suite_name"] == "tiny_suite"


def test_missing_column_is_named(tmp_path: Path) -> None:
    report = run(good_frame().drop(columns=["contract"]), tmp_path)
    failure = failed(report, "contract", "expect_column_to_exist")
    assert "missing" in failure.details
    assert [f.column for f in report.failures] == ["contract"], report.summary()


def test_renamed_target_is_named_with_a_hint(tmp_path: Path) -> None:
    report = run(good_frame().rename(columns={"churn": "Churn"}), tmp_path)
    failure = failed(report, "churn", "expect_column_to_exist")
    assert "'Churn'" in failure.details
    assert "churn: expect_column_to_exist" in report.summary()


def test_text_in_numeric_column_fails_its_type(tmp_path: Path) -> None:
    frame = good_frame()
    frame["tenure"] = frame["tenure"].astype(str)
    frame.loc[5, "tenure"] = "twelve"
    report = run(frame, tmp_path)
    failure = failed(report, "tenure", "expect_column_values_to_be_in_type_list")
    assert "'twelve'" in failure.details
    # The range check cannot run on text; it is a consequence, not a second problem.
    assert [f.column for f in report.failures] == ["tenure"], report.summary()


def test_out_of_range_values_are_counted(tmp_path: Path) -> None:
    frame = good_frame()
    frame.loc[[1, 2, 7], "charges"] = [-5.0, 900.0, -5.0]
    report = run(frame, tmp_path)
    failure = failed(report, "charges", "expect_column_values_to_be_between")
    assert "3 of 39 values out of range" in failure.details
    assert "-5.0" in failure.details and "900.0" in failure.details


def test_a_few_unseen_categories_pass(tmp_path: Path) -> None:
    frame = good_frame()
    frame.loc[0, "contract"] = "Biennial"  # 1 of 40 = 2.5% unseen, 10% allowed
    report = run(frame, tmp_path)
    assert report.success, report.summary()


def test_a_flood_of_unseen_categories_fails(tmp_path: Path) -> None:
    frame = good_frame()
    frame.loc[: ROWS // 2, "contract"] = "Biennial"
    report = run(frame, tmp_path)
    failure = failed(report, "contract", "expect_column_values_to_be_in_set")
    assert "'Biennial'" in failure.details


def test_int_coded_categories_compare_as_text(tmp_path: Path) -> None:
    frame = good_frame()
    frame.loc[: ROWS // 2, "plan"] = 3
    report = run(frame, tmp_path)
    failure = failed(report, "plan", "expect_column_values_to_be_in_set")
    assert "'3'" in failure.details


def test_all_null_column_fails_even_when_nullable(tmp_path: Path) -> None:
    frame = good_frame()
    frame["charges"] = np.nan
    report = run(frame, tmp_path)
    failure = failed(report, "charges", "expect_column_proportion_of_non_null_values_to_be_between")
    assert "null" in failure.details


def test_nulls_in_non_nullable_column_fail(tmp_path: Path) -> None:
    frame = good_frame()
    frame["tenure"] = frame["tenure"].astype("float64")
    frame.loc[[0, 1], "tenure"] = np.nan
    report = run(frame, tmp_path)
    assert "2 of 40 values are null" in failed(
        report, "tenure", "expect_column_values_to_not_be_null").details


def test_single_class_target_fails(tmp_path: Path) -> None:
    frame = good_frame()
    frame["churn"] = "No"
    report = run(frame, tmp_path)
    present = failed(report, "churn", "expect_column_distinct_values_to_contain_set")
    assert "Yes" in present.details
    balance = failed(report, "churn", "expect_column_values_to_be_in_set")
    assert "'Yes'" in balance.details and "0.0%" in balance.details


def test_rare_class_below_min_fraction_fails(tmp_path: Path) -> None:
    frame = good_frame()
    frame["churn"] = ["Yes"] + ["No"] * (ROWS - 1)  # 2.5% < 20%
    report = run(frame, tmp_path)
    assert "2.5%" in failed(report, "churn", "expect_column_values_to_be_in_set").details


def test_unknown_target_values_fail(tmp_path: Path) -> None:
    frame = good_frame()
    frame.loc[0, "churn"] = "Maybe"
    report = run(frame, tmp_path)
    assert "'Maybe'" in failed(report, "churn", "expect_column_values_to_be_in_set").details


def test_too_few_rows_fails_at_table_level(tmp_path: Path) -> None:
    report = run(good_frame().head(12), tmp_path)
    failure = failed(report, None, "expect_table_row_count_to_be_between")
    assert "at least 20 rows, found 12" in failure.details
    assert report.summary().splitlines()[1].strip().startswith("<table>:")


def test_caller_frame_is_untouched_and_old_outputs_replaced(tmp_path: Path) -> None:
    frame = good_frame()
    before = frame.copy()
    stale = tmp_path / "validation" / "stale.txt"
    stale.parent.mkdir()
    stale.write_text("from an earlier run")
    run(frame, tmp_path)
    pd.testing.assert_frame_equal(frame, before)
    assert not stale.exists()
    assert (tmp_path / "validation" / "result.json").is_file()


def test_duplicate_columns_make_validation_impossible(tmp_path: Path) -> None:
    frame = pd.concat([good_frame(), good_frame()[["tenure"]]], axis=1)
    with pytest.raises(DataError, match="duplicate column names"):
        run(frame, tmp_path)
    assert not (tmp_path / "validation").exists()


def test_data_docs_link_only_local_files_and_name_the_run(
    good_run: tuple[ValidationReport, Path],
) -> None:
    """No page fetches anything from the network, and the run's page names its data asset.
    A headless browser drawing the index offline: tests/integration/test_data_docs_offline.py."""
    import re

    _, out = good_run
    docs = out / "docs"
    pages = list(docs.rglob("*.html"))
    for page in pages:
        refs = re.findall(r"(?:src|href)=\"([^\"#]+)\"", page.read_text())
        assert [r for r in refs if re.match(r"\w+://", r)] == [], page.name
        local = [page.parent / r for r in refs if "static/vendor/" in r]
        assert local and all(path.is_file() for path in local), (page.name, refs)
    index = (docs / "index.html").read_text()
    assert "static/vendor/bootstrap-4.3.1/bootstrap.min.css" in index
    assert "static/vendor/bootstrap-table-1.19.1/bootstrap-table.min.js" in index
    validation = next(p for p in pages if "validations" in p.parts)
    text = validation.read_text()
    assert "Data asset: None" not in text and "Data asset: tiny" in text
    assert "__none__" not in text and re.search(r"tiny-\d{8}-\d{6}", text)


def test_the_validation_suite_does_not_grow_with_the_levels(
    good_run: tuple[ValidationReport, Path],
) -> None:
    """One value-set expectation per categorical column, whether it has 3 levels or 4,000."""
    import great_expectations as gx

    from flywheel.validation.suite import build_suite

    def suite_size(levels: int) -> int:
        contract = SPEC.features[2].model_copy(
            update={"categories": [f"Z{i:04d}" for i in range(levels)]}
        )
        features = [contract if f.name == "contract" else f for f in SPEC.features]
        return len(build_suite(SPEC.model_copy(update={"features": features}), PARAMS).expectations)

    gx.get_context(mode="ephemeral")  # GX builds suites only inside a context (good_run
    # has paid its import already)
    assert suite_size(4000) == suite_size(3)


def test_markup_in_the_data_never_reaches_data_docs_as_markup(tmp_path: Path) -> None:
    """Stored XSS: an unexpected category is listed in the report as text, not run."""
    frame = good_frame()
    frame.loc[:9, "contract"] = "<script>alert(1)</script>"  # a quarter: past category_mostly
    report = run(frame, tmp_path)
    assert not report.success  # still an unknown category, as before
    pages = [p.read_text() for p in (tmp_path / "validation" / "docs").rglob("*.html")]
    assert pages and not any("<script>alert(1)" in page for page in pages)
    assert any("&lt;script&gt;alert(1)" in page for page in pages)


def test_escaping_keeps_every_decision() -> None:
    """`html.escape` is one-to-one: a value is in a set exactly when its escaped form is."""
    from flywheel.validation.html_safe import escaped, escaped_list, html_safe_frame

    values = ["A&B", "A&amp;B", "<b>", "plain", "it's", '"q"']
    assert len(set(escaped_list(values))) == len(values)
    assert escaped("A&B") == "A&amp;B" and escaped("<b>") == "&lt;b&gt;"
    frame = pd.DataFrame({"x": ["A&B", None, "plain"], "n": [1, 2, 3]})
    safe = html_safe_frame(frame)
    assert safe["x"].tolist()[0] == "A&amp;B" and safe["x"].isna().tolist()[1]
    assert safe["n"].tolist() == [1, 2, 3] and frame["x"].tolist()[0] == "A&B"
    clean = pd.DataFrame({"x": ["a", "b"]})
    assert html_safe_frame(clean) is clean  # nothing to escape: no copy
