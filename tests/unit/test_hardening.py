"""Cheap checks of the hardening pieces: lineage, one-line errors, locks, limits, retention,
exposure rules and the artifacts folder setting, each through the path a user takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from flywheel.errors import ConfigError, ProjectBusy

REPO = Path(__file__).resolve().parents[2]


def cli(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flywheel.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FLYWHEEL_ROOT": str(root), **env},
    )


# --- lineage ---------------------------------------------------------------------------------


def test_untracked_source_files_make_the_commit_dirty(project: Path) -> None:
    from flywheel.registry.lineage import git_commit

    clean = git_commit(project)
    assert len(clean) == 40 and not clean.endswith("-dirty")
    (project / "new_feature.py").write_text("X = 1\n")
    assert git_commit(project) == f"{clean}-dirty"


def test_lineage_says_why_when_git_cannot_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flywheel.registry.lineage import git_commit

    value = git_commit(tmp_path)  # not a repository
    assert value.startswith("unknown (git failed:") and "not a git repository" in value
    assert "git cannot tell" in caplog.text


# --- the validation error is one line --------------------------------------------------------


def test_a_failed_validation_report_headline_is_one_line() -> None:
    from flywheel.validation.report import Failure, ValidationReport

    report = ValidationReport(
        success=False,
        failures=[
            Failure("tenure", "expect_column_values_to_be_between", "12 values\nbelow 0"),
            Failure("contract", "expect_column_values_to_be_in_set", "Weekly"),
            Failure(None, "expect_table_row_count_to_be_between", "3 rows"),
        ],
        statistics={},
        suite_name="wa_churn",
    )
    line = report.headline()
    assert "\n" not in line and line.startswith("3 failed check(s); tenure:")
    assert "also on <table>, contract" in line


# --- the project lock ------------------------------------------------------------------------


def test_the_lock_refuses_a_second_holder_and_reports_an_interrupted_run(project: Path) -> None:
    from flywheel.project_lock import last_run, project_lock
    from flywheel.settings import settings

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from flywheel.project_lock import project_lock;"
            "from flywheel.settings import settings\n"
            "with project_lock(settings(), 'holder'):\n print('held', flush=True); time.sleep(60)",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ProjectBusy, match="holder by pid"), project_lock(settings(), "me"):
            pass
        assert last_run(settings())["state"] == "running"
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert last_run(settings())["state"] == "interrupted"
    with project_lock(settings(), "me"):
        pass
    assert last_run(settings())["state"] == "finished"


# --- request limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (json.dumps([{"a": "[[[[", "b": 1}] * 100), False),
        (json.dumps({"a": [[[["x"]]]]}), False),
        (b"[" * 50_000 + b"]" * 50_000, True),
        (b"[" * 50_000, True),
        (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, True),
        # strings holding brackets cannot make a deep body look shallow
        (('["]",' * 40 + '"["' + ',"["]' * 40).encode(), True),
    ],
)
def test_depth_check(body: bytes | str, deep: bool) -> None:
    from flywheel.serving.limits import TooDeep, check_depth

    data = body.encode() if isinstance(body, str) else body
    if deep:
        with pytest.raises(TooDeep):
            check_depth(data, 32)
    else:
        check_depth(data, 32)


def test_retention_removes_old_then_oldest_files_and_nothing_else(tmp_path: Path) -> None:
    from flywheel.serving.privacy import enforce_retention

    now = time.time()
    for name, size, age in (
        ("inference-a.parquet", 100, 40),
        ("inference-b.parquet", 600, 3),
        ("inference-c.parquet", 600, 2),
        ("inference-d.parquet", 600, 1),
        ("other.parquet", 5000, 90),
    ):
        (tmp_path / name).write_bytes(b"x" * size)
        os.utime(tmp_path / name, (now - age * 86400,) * 2)
    removed = enforce_retention(tmp_path, max_age_s=30 * 86400, max_bytes=1300)
    assert [p.name for p in removed] == ["inference-a.parquet", "inference-b.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "inference-c.parquet",
        "inference-d.parquet",
        "other.parquet",
    ]


# --- exposure --------------------------------------------------------------------------------


def test_serving_beyond_loopback_needs_a_token_or_an_explicit_flag(project: Path) -> None:
    from flywheel.serving.auth import check_exposure

    done = cli(project, "serve", "--host", "0.0.0.0", FLYWHEEL_API_TOKEN="")
    assert done.returncode == ConfigError.exit_code
    assert "refusing to serve on 0.0.0.0 without a token" in done.stderr
    assert "FLYWHEEL_API_TOKEN" in done.stderr and "--insecure-no-auth" in done.stderr
    check_exposure("127.0.0.1", False, False)
    check_exposure("::1", False, False)
    check_exposure("0.0.0.0", True, False)
    check_exposure("0.0.0.0", False, True)
    with pytest.raises(ConfigError):
        check_exposure("example.com", False, False)


def test_serving_another_model_without_a_champion_is_refused(project: Path) -> None:
    done = cli(project, "serve", "--model", "flywheel-nothing-here")
    assert done.returncode == ConfigError.exit_code
    assert "no flywheel-nothing-here@champion" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1


# --- FLYWHEEL_ARTIFACTS_DIR ------------------------------------------------------------------


def test_dvc_yaml_and_bento_follow_the_artifacts_setting(project: Path) -> None:
    from flywheel.serving.launch import bentofile_for

    done = cli(project, "dvc-yaml", FLYWHEEL_ARTIFACTS_DIR="build/out")
    assert done.returncode == 0, done.stderr
    text = (project / "dvc.yaml").read_text()
    assert "artifacts/" not in text and "build/out/train" in text
    stages = yaml.safe_load(text)["stages"]
    assert stages["promote"]["outs"] == [{"build/out/promote/decision.json": {"cache": False}}]

    outside = cli(project, "dvc-yaml", FLYWHEEL_ARTIFACTS_DIR="/elsewhere")
    assert outside.returncode == ConfigError.exit_code and "outside the project" in outside.stderr

    (project / "bentofile.yaml").write_bytes((REPO / "bentofile.yaml").read_bytes())
    requirements = project / "build" / "out" / "bento" / "requirements.txt"
    requirements.parent.mkdir(parents=True)
    requirements.write_text("pandas\n")
    written = yaml.safe_load(bentofile_for(project, requirements).read_text())
    assert written["python"]["requirements_txt"] == "build/out/bento/requirements.txt"

    refused = cli(project, "bento", FLYWHEEL_ARTIFACTS_DIR="/elsewhere")
    assert refused.returncode == ConfigError.exit_code and "outside the project" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


# --- "when trained" --------------------------------------------------------------------------


def test_trained_at_comes_from_training_not_from_registration() -> None:
    from types import SimpleNamespace

    from flywheel.registry.status import describe_version

    registered_ms = 1_800_000_000_000  # a day after training
    run = SimpleNamespace(
        data=SimpleNamespace(metrics={}), info=SimpleNamespace(start_time=registered_ms - 3_600_000)
    )
    client = SimpleNamespace(get_run=lambda run_id: run)
    tagged = SimpleNamespace(
        name="m",
        version=3,
        run_id="r",
        creation_timestamp=registered_ms,
        tags={"flywheel.trained_at": "2026-01-02T03:04:05+00:00"},
    )
    assert describe_version(client, tagged)["trained_at"] == "2026-01-02T03:04:05+00:00"
    untagged = SimpleNamespace(**{**vars(tagged), "tags": {}})
    assert describe_version(client, untagged)["trained_at"] == "2027-01-15T07:00:00+00:00"
