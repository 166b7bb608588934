"""Where a model came from: the code commit and the data hash, recorded on every version."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

UNKNOWN = "unknown"


def git_commit(root: Path) -> str:
    """HEAD's hash, suffixed `-dirty` when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return UNKNOWN
    return f"{head}-dirty" if dirty else head


def file_md5(path: Path) -> str:
    """The md5 of one file, as `md5sum` prints it: how a table outside `data.dvc` is traced."""
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
