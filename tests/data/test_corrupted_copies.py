"""A corrupted copy of the default table is refused by the real validate step, in one line that
names the column, and the file is left as it arrived."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from flywheel.errors import FlywheelError
from tests.conftest import make_project, project_in_use

COPY = Path("incoming") / "wa_churn.csv"
Corruption = Callable[[pd.DataFrame], pd.DataFrame]


def _every_20th(column: str, value: object) -> Corruption:
    """5% of the rows: past `category_mostly`, so a flood and not a handful of new levels."""

    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.astype({column: object})
        out.loc[out.index[::20], column] = value
        return out

    return corrupt


CORRUPTIONS: dict[str, tuple[str, Corruption]] = {
    "negative tenure": ("tenure", _every_20th("tenure", -3)),
    "tenure blank": ("tenure", _every_20th("tenure", np.nan)),
    "text in monthly charges": ("monthly_charges", _every_20th("monthly_charges", "n/a")),
    "unknown contract": ("contract", _every_20th("contract", "Weekly")),
    "unknown target value": ("churn", _every_20th("churn", "Maybe")),
    "column dropped": ("payment_method", lambda frame: frame.drop(columns="payment_method")),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose second spec reads `incoming/wa_churn.csv`: the copy each test corrupts."""
    root = make_project(tmp_path_factory.mktemp("corrupted") / "project")
    if not (root / "data" / "wa_churn.csv").is_file():
        pytest.skip("data/wa_churn.csv is not in place (run `flywheel pull-data`)")
    spec = yaml.safe_load((root / "specs" / "wa_churn.yaml").read_text())
    (root / "specs" / "incoming.yaml").write_text(yaml.safe_dump({**spec, "path": str(COPY)}))
    (root / COPY).parent.mkdir()
    with project_in_use(root):
        yield root


FAST = {"unknown contract"}  # one validation costs seconds: the others run in `make test` only


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=() if c in FAST else pytest.mark.slow) for c in CORRUPTIONS]
)
def test_a_corrupted_copy_is_refused_in_one_line_naming_the_column(
    project: Path, case: str
) -> None:
    from flywheel.steps.context import make_context
    from flywheel.steps.execute import run_step

    column, corrupt = CORRUPTIONS[case]
    corrupt(pd.read_csv(project / "data" / "wa_churn.csv")).to_csv(project / COPY, index=False)
    arrived = (project / COPY).read_bytes()

    with pytest.raises(FlywheelError) as refused:
        run_step("validate", make_context(project / "specs" / "incoming.yaml"))

    line = str(refused.value)
    assert "\n" not in line and column in line, line
    assert (project / COPY).read_bytes() == arrived  # kept for inspection
