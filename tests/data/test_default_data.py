"""The real default table passes its own spec with the real params (Made-With-ML data tests)."""

from __future__ import annotations

from pathlib import Path

from flywheel.config import load_params
from flywheel.data.io import read_table
from flywheel.data.spec import load_spec
from flywheel.validation import validate_frame

REPO = Path(__file__).resolve().parents[2]


def test_default_table_passes_its_spec(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml")
    spec = load_spec(REPO / params.data.spec)
    frame = read_table(REPO / spec.path)
    out = tmp_path / "validation"

    report, saved = validate_frame(spec, frame, params.validate_, out / "docs")

    assert report.success, report.summary()
    assert report.statistics["rows"] == len(frame) >= params.validate_.min_rows
    assert saved["success"] is True
    assert saved["ge_result"]["statistics"]["unsuccessful_expectations"] == 0
    assert (out / "docs" / "index.html").is_file()
