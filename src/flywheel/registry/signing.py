"""Signed verdicts: what the registry says about a version, checkable without trusting it.

The registry records each version's SHA-256 (integrity.py), but whoever can write the registry
(its SQLite file, or an MLflow server without authentication) can also write that tag and move
`champion`: a digest stored next to what it protects proves nothing against them. So the
pipeline signs, with a key kept outside the registry, the record that matters:

    model name, version number, SHA-256 of its files, and the gate's verdict

as an HMAC-SHA256 (stdlib `hmac`: no new dependency) stored in the tag `flywheel.signature`
as `v1:<key id>:<verdict>:<hex mac>`. Every load checks the signature before it downloads or
unpickles anything; a version whose signature is missing, made with an unknown key, or made
over another name, version, digest or verdict is refused.

Verdicts: `registered` (signed at registration, before the gate: the load check and explicit
batch scoring accept it), `promoted` (the gate passed, or `promote --version` passed it),
`forced` (promoted by hand with a reason), `rejected`, `rolled_back` (demoted by a rollback).
Only `promoted` and `forced` may serve as champion.

The key file holds one key per line, `<key id> <64 hex digits>`; the first line signs, every
line verifies (a keyring: rotating prepends a new key and keeps the old ones for verification
until every version they signed is re-signed or retired). It is created on first use, mode
0600, and refused if group or others may read it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flywheel.errors import ConfigError
from flywheel.private_file import create_private, read_private, replace_private
from flywheel.registry.store import TAG_PREFIX

log = logging.getLogger(__name__)

SIGNATURE_TAG = f"{TAG_PREFIX}signature"
SCHEME = "v1"
REGISTERED, PROMOTED, FORCED, REJECTED, ROLLED_BACK = (
    "registered", "promoted", "forced", "rejected", "rolled_back")
VERDICTS = frozenset({REGISTERED, PROMOTED, FORCED, REJECTED, ROLLED_BACK})
SERVABLE = frozenset({PROMOTED, FORCED})  # what may be champion (service, rollback, evaluate)
ANY_VERDICT = VERDICTS  # the files are genuine; the verdict does not matter (load check, batch)
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SECRET = re.compile(r"[0-9a-f]{64}")
_MAC = re.compile(r"[0-9a-f]{64}")
HEADER = "# Flywheel signing keys, `<key id> <64 hex digits>`: the first line signs, all verify\n"


@dataclass(frozen=True)
class Keyring:
    """The signing key (first) and every key that may verify, by key id."""

    path: Path
    signing_id: str
    keys: dict[str, bytes]

    def sign(self, name: str, version: str, sha256: str, verdict: str) -> str:
        """The tag value that vouches for this record."""
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        mac = _mac(self.keys[self.signing_id], name, version, sha256, verdict)
        return f"{SCHEME}:{self.signing_id}:{verdict}:{mac}"

    def verdict_of(self, name: str, version: str, sha256: str, tag: str | None) -> str:
        """The verdict `tag` vouches for, or a ValueError saying in one line what is wrong."""
        if not tag:
            raise ValueError(f"no signature ({SIGNATURE_TAG})")
        parts = tag.split(":")
        if len(parts) != 4 or parts[0] != SCHEME:
            raise ValueError(f"malformed signature (expected {SCHEME}:KEY:VERDICT:MAC)")
        _, key_id, verdict, mac = parts
        if verdict not in VERDICTS or not _MAC.fullmatch(mac):
            raise ValueError(f"malformed signature ({SIGNATURE_TAG})")
        key = self.keys.get(key_id)
        if key is None:
            shown = key_id if _KEY_ID.fullmatch(key_id) else "?"
            raise ValueError(f"signed with key {shown!r}, which is not in the keyring {self.path}")
        if not hmac.compare_digest(mac, _mac(key, name, version, sha256, verdict)):
            raise ValueError("signature does not match this name, version, digest and verdict")
        return verdict


def _mac(key: bytes, name: str, version: str, sha256: str, verdict: str) -> str:
    return keyed_digest(key, ("flywheel-verdict", SCHEME, name, version, sha256, verdict))


def keyed_digest(key: bytes, fields: tuple[str, ...]) -> str:
    """HMAC-SHA256 of `fields`; the first names the purpose, so a MAC made for one kind of
    record (a verdict, a step artifact) is never valid for another."""
    # Length-prefixed fields: no two different records serialize to the same bytes.
    message = b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def load_keyring(path: Path) -> Keyring:
    """Read the key file; a missing, loose or malformed one is a one-line ConfigError."""
    if not path.is_file():
        raise ConfigError(
            f"{path}: no signing key, so no registered version can be verified; mount the "
            "deployment's key (FLYWHEEL_SIGNING_KEY_FILE), or, for versions registered before "
            "signing, vouch for each after checking it with `flywheel sign --version N` (which "
            "creates the key)"
        )
    text = read_private(path, "signing key")
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 2 or not _KEY_ID.fullmatch(parts[0]) or not _SECRET.fullmatch(parts[1]):
            raise ConfigError(
                f"{path}:{number}: expected `<key id> <64 hex digits>` (a key per line)"
            )
        keys[parts[0]] = bytes.fromhex(parts[1])
        order.append(parts[0])
    if not order:
        raise ConfigError(f"{path}: holds no key; expected `<key id> <64 hex digits>` lines")
    return Keyring(path=path, signing_id=order[0], keys=keys)


def new_key_line() -> str:
    """A fresh key: an id that says when it was made, and 256 random bits."""
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return f"k{stamp}-{secrets.token_hex(3)} {secrets.token_hex(32)}"


def ensure_keyring(path: Path) -> Keyring:
    """The keyring at `path`, generated (one key, mode 0600) if there is none yet."""
    if create_private(path, f"{HEADER}{new_key_line()}\n"):
        log.info("generated a signing key in %s (keep it outside the registry)", path)
    return load_keyring(path)


def rotate_keyring(path: Path) -> str:
    """Prepend a new signing key, keep the old ones for verification; returns the new id."""
    old = load_keyring(path)
    line = new_key_line()
    kept = "".join(f"{kid} {key.hex()}\n" for kid, key in old.keys.items())
    replace_private(path, f"{HEADER}{line}\n{kept}")
    return line.split()[0]
