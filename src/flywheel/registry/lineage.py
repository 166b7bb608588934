"""Where a model came from: the code commit and the data hash, recorded on every version."""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
# What a run itself writes in the project: a first run on a fresh clone writes dvc.lock (each
# step recorded as `dvc repro` would) before promote asks git, so counting it made every first
# version `-dirty`. Logs, local tokens and `dvc plots` pages are outputs as well.
RUN_WRITES = ("artifacts", "dvc.lock", "logs", ".flywheel", "dvc_plots")


def origin_tags(origin: dict[str, str]) -> dict[str, str]:
    """A bring-your-own model's code origin (training/custom.py) as lineage entries: which
    factory, its file's sha256 and its package version, next to the git commit."""
    return {f"custom_model.{key}": value for key, value in origin.items()}


def search_tags(search_file: Path) -> dict[str, str]:
    """The hyperparameter search's outcome (training/tuning.py, written by the train step) as a
    lineage entry: which candidate, its best settings and score, and how many trials; nothing
    when the search was off."""
    import json

    if not search_file.is_file():
        return {}
    study = json.loads(search_file.read_text())
    best = {key: study[key] for key in ("candidate", "metric", "best_params", "best_value")}
    best["trials"] = len(study["trials"])
    return {"search": json.dumps(best, separators=(",", ":"), default=str)}


def git_commit(root: Path) -> str:
    """HEAD's hash, suffixed `-dirty` when tracked files differ or untracked files exist.

    What a run writes itself (`RUN_WRITES`: step outputs, dvc.lock, logs) does not count.

    Untracked source files change what runs as much as edited ones, so they count. When git
    cannot answer (not a repository, no git, no commit yet) the value says so in words and a
    warning is logged, instead of a bare `unknown` nobody notices.
    """
    try:
        head = _git(root, "rev-parse", "HEAD")
        # Step outputs (metrics, plots, the decision, dvc.lock) are results, not what runs:
        # they are left out, or every run would look dirty.
        dirty = _git(root, "status", "--porcelain", "--untracked-files=normal", "--", ".",
                     *(f":(exclude){path}" for path in RUN_WRITES))
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        reason = " ".join(str(detail).split())[:200] or type(exc).__name__
        log.warning("git cannot tell which commit this model comes from: %s", reason)
        return f"{UNKNOWN} (git failed: {reason})"
    return f"{head}-dirty" if dirty else head


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def file_md5(path: Path) -> str:
    """The md5 of one file, as `md5sum` prints it: how a table outside `data.dvc` is traced."""
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
