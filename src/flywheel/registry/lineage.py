"""Where a model came from: the code commit and the data hash, recorded on every version."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

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


def data_md5(root: Path, data_path: Path) -> str:
    """The hash DVC recorded for the tracked data, or the file's own md5 for untracked data."""
    dvc_file = root / "data.dvc"
    tracked_dir = root / "data"
    if dvc_file.is_file() and data_path.resolve().is_relative_to(tracked_dir.resolve()):
        outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
        md5 = outs[0].get("md5")
        if md5:
            return str(md5)
    digest = hashlib.md5()
    with data_path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
