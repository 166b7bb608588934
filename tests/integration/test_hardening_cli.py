"""The hardening pieces through the path a user takes: lineage read from git, the project lock
against a second process, and the CLI refusing what it must (exposure, a missing champion, an
artifacts folder outside the project), each with one line and a fitting exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flywheel.errors import ConfigError, ProjectBusy, RegistryError
from tests.conftest import REPO, run_cli


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


def test_serving_beyond_loopback_needs_a_token_or_an_explicit_flag(project: Path) -> None:
    from flywheel.serving.auth import check_exposure

    done = run_cli(project, "serve", "--host", "0.0.0.0", FLYWHEEL_API_TOKEN="")
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
    done = run_cli(project, "serve", "--model", "flywheel-nothing-here")
    # the registry is asked, and says which models it has (none here): exit 5, one line
    assert done.returncode == RegistryError.exit_code, done.stderr
    assert "flywheel-nothing-here" in done.stderr and "none registered yet" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1


def test_dvc_yaml_and_bento_follow_the_artifacts_setting(project: Path) -> None:
    from flywheel.serving.launch import bentofile_for

    done = run_cli(project, "dvc-yaml", FLYWHEEL_ARTIFACTS_DIR="build/out")
    assert done.returncode == 0, done.stderr
    text = (project / "dvc.yaml").read_text()
    assert "artifacts/" not in text and "build/out/train" in text
    stages = yaml.safe_load(text)["stages"]
    assert stages["promote"]["outs"] == [{"build/out/promote/decision.json": {"cache": False}}]

    outside = run_cli(project, "dvc-yaml", FLYWHEEL_ARTIFACTS_DIR="/elsewhere")
    assert outside.returncode == ConfigError.exit_code and "outside the project" in outside.stderr

    (project / "bentofile.yaml").write_bytes((REPO / "bentofile.yaml").read_bytes())
    requirements = project / "build" / "out" / "bento" / "requirements.txt"
    requirements.parent.mkdir(parents=True)
    requirements.write_text("pandas\n")
    written = yaml.safe_load(bentofile_for(project, requirements).read_text())
    assert written["python"]["requirements_txt"] == "build/out/bento/requirements.txt"

    refused = run_cli(project, "bento", FLYWHEEL_ARTIFACTS_DIR="/elsewhere")
    assert refused.returncode == ConfigError.exit_code and "outside the project" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
