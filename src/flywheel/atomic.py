"""Writing outputs so that a crash never leaves half of one where the next step looks."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from flywheel.pause import pause_point


@contextmanager
def replacing_dir(target: Path) -> Iterator[Path]:
    """Yield an empty sibling folder that replaces `target` whole if the block succeeds.

    The old folder is moved aside before the new one is renamed in, so a reader sees either
    the old outputs or the new ones; on failure the new folder is removed and `target` stays.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; the output is an ordinary folder
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pause_point(f"staged:{target.name}")
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        target.rename(old / target.name)
        pause_point(f"moved-aside:{target.name}")
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(target)


def write_folder(target: Path, files: dict[str, bytes]) -> None:
    """Replace `target` whole with `files` (relative path -> content), as `replacing_dir` does."""
    with replacing_dir(target) as staging:
        for name, content in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Let `write` fill a temporary sibling file, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def remove_leftovers(parent: Path) -> list[Path]:
    """Clear what a killed writer left under `parent` (and one level down); call under the lock.

    `replacing_dir` stages in `.NAME.XXXXXXXX` folders (mkdtemp) and `write_atomically` in
    `.NAME.tmp` files; nothing else is touched. A kill between moving the old folder aside and
    renaming the new one in leaves only the old one, under `.NAME.old.XXXXXXXX/NAME`: it is put
    back, so the last complete output is never lost.
    """
    if not parent.is_dir():
        return []
    for entry in sorted(parent.iterdir()):
        found = _STAGING.match(entry.name)
        if found and found["old"] and entry.is_dir():
            kept, target = entry / found["name"], parent / found["name"]
            if kept.is_dir() and not target.exists():
                kept.rename(target)
    folders = [d for d in parent.iterdir() if d.is_dir() and not d.name.startswith(".")]
    removed = []
    for entry in [*parent.iterdir(), *(p for d in folders for p in d.iterdir())]:
        if entry.is_dir() and _STAGING.match(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        elif entry.is_file() and entry.name.startswith(".") and entry.name.endswith(".tmp"):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


# mkdtemp's names: the prefix, then eight characters from [a-z0-9_].
_STAGING = re.compile(r"^\.(?P<name>[^.]+)\.(?P<old>old\.)?[a-z0-9_]{8}$")
