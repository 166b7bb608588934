"""Data Docs drawn offline by a real browser: bootstrap-table, from the local vendor copies,
renders the result list of a validation run (one row, a success) with no network."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import require_program
from tests.unit.test_validation import good_frame, run


def test_data_docs_index_lists_the_run_in_a_headless_browser(tmp_path: Path) -> None:
    chromium = require_program("chromium")
    report = run(good_frame(), tmp_path)
    assert report.success, report.summary()
    index = tmp_path / "validation" / "docs" / "index.html"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", index.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert 'class="bootstrap-table' in dom, dom[:2000]
    rows = re.findall(r'<tr [^>]*data-href="validations/[^>]*>(.*?)</tr>', dom, re.DOTALL)
    assert len(rows) == 1 and "fa-check-circle" in rows[0] and "tiny-" in rows[0], rows
