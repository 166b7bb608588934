"""Bad data stops `flywheel run` while its fast start is still importing (the prewarm thread,
the validate process, the load checker): each run ends them all and prints its one line.

A module of its own (a fresh project needs no earlier run), so pytest-xdist can run these
twenty real CLI runs next to the long pipeline module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_project, project_in_use, run_cli
from tests.e2e.test_pipeline import BAD_INPUTS

pytestmark = pytest.mark.slow
EARLY_FAILURES = ("missing column", "out of range values", "single-class target", "all-null column")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Path]:
    root = make_project(tmp_path_factory.mktemp("early") / "project")
    with project_in_use(root, chdir=True, PREFECT_API_URL=prefect_server):
        yield root


def test_an_early_failure_prints_one_line_twenty_runs_in_a_row(root: Path) -> None:
    table = root / "data" / "wa_churn.csv"
    pristine = table.read_bytes()
    try:
        for run in range(20):
            case = EARLY_FAILURES[run % len(EARLY_FAILURES)]
            make, exit_codes, needle = BAD_INPUTS[case]
            table.write_bytes(make(pristine.decode()))
            done = run_cli(root, "run", COLUMNS="400")
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert done.returncode in exit_codes, (run, case, done.stderr[-3000:])
            assert len(lines) == 1 and lines[0].startswith("error:"), (run, case, done.stderr)
            assert needle in lines[0] and "Traceback" not in done.stdout + done.stderr
    finally:
        table.write_bytes(pristine)
