"""A `.dvc` text from the registry, accepted only if it can restore nothing but `data/`.

`flywheel data checkout` writes the text a version recorded (tag `flywheel.data_dvc`) into
data.dvc and forces a DVC checkout. The registry is input, not a trusted record: a crafted
text naming another path (`src/flywheel/__init__.py`, `../x`), several outputs, a stage
command, or an md5 of the wrong shape would let a registry writer overwrite any file of the
repository or run a command. So the text is parsed, held to exactly one output, `path: data`,
with a well-formed md5, and rebuilt from those checked fields: what is written is never the
caller's text.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

DATA_PATH = "data"
_MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")
_COUNTS = ("size", "nfiles")


class UnsafeDvcText(ValueError):
    """The text would restore something other than `data/`; the message says what."""


def checked_dvc_text(text: str) -> str:
    """A data.dvc text rebuilt from `text`'s checked fields, or `UnsafeDvcText` (one line)."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UnsafeDvcText("not YAML") from None
    if not isinstance(parsed, dict) or set(parsed) != {"outs"}:
        keys = sorted(map(str, parsed)) if isinstance(parsed, dict) else type(parsed).__name__
        raise UnsafeDvcText(f"expected only `outs:`, found {str(keys)[:80]}")
    outs = parsed["outs"]
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        raise UnsafeDvcText("expected exactly one output under `outs:`")
    return yaml.safe_dump({"outs": [_checked_out(outs[0])]}, sort_keys=False)


def _checked_out(out: dict[str, Any]) -> dict[str, Any]:
    allowed = {"md5", "hash", "path", *_COUNTS}
    extra = sorted(map(str, set(out) - allowed))
    if extra:
        raise UnsafeDvcText(f"unexpected output fields {str(extra)[:80]}")
    if out.get("path") != DATA_PATH:
        raise UnsafeDvcText(f"output path {str(out.get('path'))[:80]!r}: expected {DATA_PATH!r}")
    md5 = out.get("md5")
    if not isinstance(md5, str) or not _MD5.fullmatch(md5):
        raise UnsafeDvcText(f"md5 {str(md5)[:80]!r}: expected 32 hex digits (+ '.dir')")
    if out.get("hash", "md5") != "md5":
        raise UnsafeDvcText(f"hash {str(out.get('hash'))[:40]!r}: expected 'md5'")
    rebuilt: dict[str, Any] = {"md5": md5}
    for key in _COUNTS:
        value = out.get(key)
        if value is not None:
            if type(value) is not int or value < 0:
                raise UnsafeDvcText(f"{key} {str(value)[:40]!r}: expected a count")
            rebuilt[key] = value
    return rebuilt | {"hash": "md5", "path": DATA_PATH}
