"""Pickled step artifacts, sealed so that a file dropped in their place is never unpickled.

featurize writes `encodings.pkl` and train writes `model.pkl`; the next steps unpickle them, and
unpickling runs whatever code the file names. Anyone who can drop a file into `artifacts/` (a
shared workspace, a job with write access, a DVC remote others push to) would run code in the
next step. A plain SHA-256 next to the file proves nothing: whoever writes the file writes its
digest too. So the writer stores in `<file>.seal`, beside it,

    v1:<key id>:<HMAC-SHA256 over ("flywheel-artifact", v1, file name, SHA-256 of its bytes)>

and the reader reads the file once, checks those very bytes against the seal, and only then
hands them to `pickle.loads`: a missing, malformed, foreign-key or wrong seal is refused before
anything is unpickled.

The key is the project's signing keyring (registry/signing.py, FLYWHEEL_SIGNING_KEY_FILE), not
one of its own: one secret per deployment to create (0600, on first use), mount and rotate; a
rotated keyring still verifies with its older keys, so an artifact restored from DVC's cache
(`dvc checkout`/`dvc pull`; the seal sits in the same out folder and travels with it) keeps
loading, on any machine that mounts the deployment's key. The first field separates the
purposes: a seal is never valid as a registry verdict, nor a verdict as a seal.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from flywheel.atomic import write_atomically
from flywheel.errors import DataError
from flywheel.registry.signing import SCHEME, ensure_keyring, keyed_digest, load_keyring

SEAL_SUFFIX = ".seal"
PURPOSE = "flywheel-artifact"


def seal_path(path: Path) -> Path:
    return path.with_name(f"{path.name}{SEAL_SUFFIX}")


def write_sealed(path: Path, data: bytes, key_file: Path) -> None:
    """Write `data` to `path` and its seal beside it (the key is generated if there is none)."""
    keyring = ensure_keyring(key_file)
    key_id = keyring.signing_id
    mac = _mac(keyring.keys[key_id], path.name, data)
    write_atomically(path, lambda tmp: tmp.write_bytes(data))
    write_atomically(seal_path(path), lambda tmp: tmp.write_text(f"{SCHEME}:{key_id}:{mac}\n"))


def read_sealed(path: Path, key_file: Path, rerun: str) -> bytes:
    """The bytes of `path` if its seal vouches for them; else a one-line DataError naming the
    file and the command that writes it again (`rerun`), raised before anything unpickles."""
    if not path.is_file():
        raise DataError(f"{path}: not found; run `{rerun}`")
    data = path.read_bytes()
    problem = _seal_problem(path, data, key_file)
    if problem:
        raise DataError(
            f"{path}: refused before loading it, {problem}, so this project's step did not "
            f"write it; rerun `{rerun}` (or `flywheel run --force`)"
        )
    return data


def _seal_problem(path: Path, data: bytes, key_file: Path) -> str | None:
    """What is wrong with the seal of `data`, in a few words; None when it vouches for it."""
    seal = seal_path(path)
    if not seal.is_file():
        return f"its seal {seal.name} is missing"
    if not key_file.is_file():
        return f"no signing key at {key_file} to verify its seal"
    parts = seal.read_text(errors="replace").strip().split(":")
    if len(parts) != 3 or parts[0] != SCHEME:
        return f"its seal {seal.name} is malformed (expected {SCHEME}:KEY:MAC)"
    _, key_id, mac = parts
    key = load_keyring(key_file).keys.get(key_id)
    if key is None:
        return f"its seal was made with a key that is not in {key_file}"
    if not hmac.compare_digest(mac.encode(), _mac(key, path.name, data).encode()):
        return "its seal does not match its content"
    return None


def _mac(key: bytes, name: str, data: bytes) -> str:
    return keyed_digest(key, (PURPOSE, SCHEME, name, hashlib.sha256(data).hexdigest()))
