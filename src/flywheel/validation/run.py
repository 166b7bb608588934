"""Run the suite on a frame: the report, the record to save, and Data Docs in a given folder.

Great Expectations is imported here, inside the function, because importing it costs 7-16 s
and `flywheel --help` must stay fast (docs/architecture.md, principle 6).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flywheel.config import ValidateParams
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import category_text, task_of
from flywheel.errors import DataError
from flywheel.validation.describe import failures_from_results
from flywheel.validation.html_safe import html_safe_frame
from flywheel.validation.merge import merge_results
from flywheel.validation.report import ValidationReport
from flywheel.validation.suite import build_suite, suite_name

log = logging.getLogger(__name__)

DOCS_SITE = "flywheel"
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}


def validate_frame(
    spec: DatasetSpec, frame: pd.DataFrame, params: ValidateParams, docs_dir: Path
) -> tuple[ValidationReport, dict[str, Any]]:
    """Check `frame` against the suite derived from `spec`; failed checks are in the report.

    Returns the report and the record the validate step saves as result.json. Never raises for
    bad data (the caller decides whether a failed report stops the run); raises `DataError`
    only when the frame cannot be validated at all. Great Expectations builds its Data Docs
    into `docs_dir` (its API writes a site, it does not return one); the step hands it a
    staging folder that it swaps in whole.
    """
    return validate_batches(spec, [frame], params, docs_dir)


def validate_batches(
    spec: DatasetSpec, batches: Iterable[pd.DataFrame], params: ValidateParams, docs_dir: Path
) -> tuple[ValidationReport, dict[str, Any]]:
    """`validate_frame` for a table read batch by batch (`data.io.table_batches`): each batch
    run against the same suite, the verdict decided on the counts of all (validation/merge.py).
    Memory holds at most three batches (the one at hand, the first, and the first that fails,
    kept for the report's examples), never the table. Data Docs show each batch's run."""
    started = time.perf_counter()
    batches = iter(batches)
    first = next(batches)
    duplicated = sorted({str(c) for c in first.columns[first.columns.duplicated()]})
    if duplicated:
        raise DataError(f"the table has duplicate column names {duplicated}; rename them")
    present = {c for c in first.columns if isinstance(c, str)}
    context, definition = _suite_context(spec, params, present, docs_dir)
    raws: list[dict[str, Any]] = []
    sample, sample_passed, rows = first, True, 0
    for batch in itertools.chain([first], batches):
        prepared = html_safe_frame(_as_text_categories(spec, batch, present))
        raws.append(_run_batch(spec, definition, prepared))
        if len(raws) == 1 or (sample_passed and not raws[-1].get("success")):
            # the first batch that fails shows the failures' examples (report wording)
            sample, sample_passed = prepared, bool(raws[-1].get("success"))
        rows += len(batch)
    _build_docs(spec, context, docs_dir)
    raw = merge_results(raws)
    return _reported(spec, raw, sample, rows, first.shape[1], docs_dir, started)


def _reported(
    spec: DatasetSpec,
    raw: dict[str, Any],
    sample: pd.DataFrame,
    rows: int,
    columns: int,
    docs_dir: Path,
    started: float,
) -> tuple[ValidationReport, dict[str, Any]]:
    """The report and result.json's record from the (merged) GE result."""
    failures = failures_from_results(raw.get("results", []), spec, sample)
    statistics: dict[str, int | float] = {
        k: v for k, v in (raw.get("statistics") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    statistics.update(rows=rows, columns=columns)
    report = ValidationReport(
        success=bool(raw.get("success")) and not failures,
        failures=failures,
        statistics=statistics,
        suite_name=suite_name(spec),
    )
    # The index lists runs through CDN-loaded JavaScript; offline, link the pages directly.
    pages = sorted(
        str(p.relative_to(docs_dir.parent)) for p in docs_dir.rglob("*.html")
        if "static" not in p.parts
    )
    record = {**report.to_dict(), "summary": report.summary(), "docs_pages": pages,
              "ge_result": raw}
    log.info("validated %d rows against %s in %.2f s: %s", rows, report.suite_name,
             time.perf_counter() - started, "passed" if report.success else "FAILED")
    return report, record


def _suite_context(
    spec: DatasetSpec, params: ValidateParams, present: set[str], docs_dir: Path
) -> tuple[Any, Any]:
    """One throwaway ephemeral context per run: no project folder, nothing shared between runs."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # The "Calculating Metrics" bars go to stderr per expectation and drown the step's log.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    # Without a site of our own, an ephemeral context writes its docs to a fresh temp dir.
    context.add_data_docs_site(
        site_name=DOCS_SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    batch = (
        context.data_sources.add_pandas(name=spec.name)
        .add_dataframe_asset(name="table")
        .add_batch_definition_whole_dataframe(name="whole_table")
    )
    suite = context.suites.add(build_suite(spec, params, present))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{spec.name}_validation", data=batch, suite=suite)
    )
    return context, definition


def _run_batch(spec: DatasetSpec, definition: Any, frame: pd.DataFrame) -> dict[str, Any]:
    from great_expectations.core.run_identifier import RunIdentifier

    run_id = RunIdentifier(run_name=f"{spec.name}-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}")
    result = definition.run(
        batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT, run_id=run_id
    )
    return result.to_json_dict()  # type: ignore[no-any-return]


def _build_docs(spec: DatasetSpec, context: Any, docs_dir: Path) -> None:
    from flywheel.validation.offline_docs import make_offline

    context.build_data_docs(site_names=[DOCS_SITE])
    make_offline(docs_dir, asset_name=f"{spec.name} ({spec.path})")


def _as_text_categories(spec: DatasetSpec, frame: pd.DataFrame, present: set[str]) -> pd.DataFrame:
    """Categories are compared as text, as featurization does: 1.0 in a CSV is category '1'.

    Only non-string categorical columns (and a class target) are converted, on a shallow copy, so
    the caller's frame is untouched and the common all-text table costs nothing.
    """
    columns = [f.name for f in spec.categorical if f.name in present]
    if spec.target in present and task_of(spec).is_classification:
        columns.append(spec.target)
    converted = {
        name: frame[name].map(category_text, na_action="ignore").astype(object)
        for name in columns
        if not pd.api.types.is_string_dtype(frame[name])
    }
    return frame.assign(**converted) if converted else frame
