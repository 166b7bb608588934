"""Secrets kept in files only their owner can read: created 0600 at once, refused when looser.

Used for the signing keys, the service's local scope tokens and the alert receiver's token. A
new file is written whole to a 0600 temporary sibling and hard-linked into place, so it never
exists with a looser mode or half-written, and when processes race (workers and a CLI starting
at once) the first link wins and everyone reads the winner's file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flywheel.errors import ConfigError


def create_private(path: Path, text: str) -> bool:
    """Write `text` to a new file mode 0600 (folder 0700); False if it already existed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def replace_private(path: Path, text: str) -> None:
    """Replace `path` whole with `text`, mode 0600 (a reader sees the old or the new file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.replace(path)


def read_private(path: Path, what: str) -> str:
    """The file's text; a ConfigError naming the file if it is missing or others can read it.

    The mode is held to 0600 for files the running user owns (ours to create and chmod); a
    secret mounted by a platform (a Kubernetes Secret volume, a compose secret owned by
    another uid) has the mode its platform gives it, and the deployment docs set that.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: no {what} file")
    stat = path.stat()
    mode = stat.st_mode & 0o777
    if mode & 0o077 and stat.st_uid == os.getuid():
        raise ConfigError(
            f"{path}: {what} readable by others (mode {mode:o}); expected 600 (chmod 600 {path})"
        )
    return path.read_text()
