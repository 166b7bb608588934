"""`flywheel status` reads its few settings without pydantic (quickread.status_paths): they
must stay what `Settings` resolves, whatever the environment says."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.registry.quickread import quick_status, status_paths
from flywheel.settings import Settings

ENVIRONMENTS = [
    {},
    {"FLYWHEEL_ROOT": "{tmp}/elsewhere"},
    {"FLYWHEEL_PARAMS_FILE": "conf/p.yaml", "FLYWHEEL_ARTIFACTS_DIR": "{tmp}/out"},
    {"FLYWHEEL_TRACKING_URI": "http://mlflow:5000", "MLFLOW_TRACKING_URI": "sqlite:///x.db"},
    {"FLYWHEEL_TRACKING_URI": "", "MLFLOW_TRACKING_URI": "sqlite:///x.db"},
    {"flywheel_root": "{tmp}/lower", "flywheel_artifacts_dir": "rel/arts"},
]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_status_paths_are_what_settings_resolves(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FLYWHEEL_ROOT", "FLYWHEEL_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    full = Settings()
    assert status_paths() == (full.mlflow_uri, full.params_path, full.artifacts)


def test_an_unreadable_params_file_leaves_it_to_the_full_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_ROOT", str(tmp_path))
    (tmp_path / "params.yaml").write_text("promote: [not, a, mapping]\n")
    assert quick_status(None) is None
