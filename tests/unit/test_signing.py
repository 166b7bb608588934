"""Signed verdicts (registry/signing.py): what verifies, what is refused, keys and rotation."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from types import SimpleNamespace

import pytest

from flywheel.errors import ConfigError
from flywheel.registry.integrity import DIGEST_TAG, SignatureRefused, check_signature
from flywheel.registry.signing import (
    ANY_VERDICT,
    PROMOTED,
    REGISTERED,
    SIGNATURE_TAG,
    ensure_keyring,
    load_keyring,
    rotate_keyring,
)

SHA = "a" * 64


def version(ring_sig: str | None, name: str = "churn", number: str = "3") -> SimpleNamespace:
    tags = {DIGEST_TAG: SHA} | ({SIGNATURE_TAG: ring_sig} if ring_sig else {})
    return SimpleNamespace(name=name, version=number, tags=tags)


def test_a_generated_key_file_is_private_and_signs_and_verifies(tmp_path: Path) -> None:
    path = tmp_path / ".flywheel" / "signing.key"
    ring = ensure_keyring(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    tag = ring.sign("churn", "3", SHA, PROMOTED)
    assert ring.verdict_of("churn", "3", SHA, tag) == PROMOTED
    assert ensure_keyring(path).keys == ring.keys  # a second call keeps the key


def test_the_mac_is_hmac_sha256_over_length_prefixed_fields(tmp_path: Path) -> None:
    """Pinned by hand: a verifier in another language can recompute it from this."""
    path = tmp_path / "k"
    path.write_text(f"kid1 {'01' * 32}\n")
    path.chmod(0o600)
    fields = [b"flywheel-verdict", b"v1", b"churn", b"3", SHA.encode(), b"promoted"]
    message = b"".join(len(f).to_bytes(4, "big") + f for f in fields)
    mac = hmac.new(bytes([1] * 32), message, hashlib.sha256).hexdigest()
    assert load_keyring(path).sign("churn", "3", SHA, PROMOTED) == f"v1:kid1:promoted:{mac}"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": "other"}, "does not match"),
        ({"number": "4"}, "does not match"),
        ({"sha": "b" * 64}, "does not match"),
        ({"verdict": "registered->promoted"}, "does not match"),
        ({"kid": "unknown"}, "not in the keyring"),
        ({"tag": None}, "no signature"),
        ({"tag": "v1:kid:promoted"}, "malformed"),
        ({"tag": "v2:a:promoted:" + "0" * 64}, "malformed"),
        ({"tag": "v1:a:root:" + "0" * 64}, "malformed"),
    ],
)
def test_anything_but_the_signed_record_is_refused(
    tmp_path: Path, change: dict[str, str | None], expected: str
) -> None:
    ring = ensure_keyring(tmp_path / "k")
    tag: str | None = ring.sign("churn", "3", SHA, REGISTERED)
    if "verdict" in change:
        tag = str(tag).replace(":registered:", ":promoted:")
    if "kid" in change:
        tag = str(tag).replace(ring.signing_id, "unknown")
    tag = change.get("tag", tag) if "tag" in change else tag
    with pytest.raises(ValueError, match=expected):
        ring.verdict_of(change.get("name") or "churn", change.get("number") or "3",
                        change.get("sha") or SHA, tag)


def test_a_rotated_keyring_signs_with_the_new_key_and_still_verifies_the_old(
    tmp_path: Path,
) -> None:
    path = tmp_path / "k"
    old = ensure_keyring(path)
    before = old.sign("churn", "1", SHA, PROMOTED)
    new_id = rotate_keyring(path)
    ring = load_keyring(path)
    assert ring.signing_id == new_id != old.signing_id
    assert ring.verdict_of("churn", "1", SHA, before) == PROMOTED
    assert ring.sign("churn", "1", SHA, PROMOTED).split(":")[1] == new_id
    assert path.stat().st_mode & 0o777 == 0o600
    # Dropping the old line retires it: what it signed no longer verifies.
    lines = [line for line in path.read_text().splitlines() if old.signing_id not in line]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="not in the keyring"):
        load_keyring(path).verdict_of("churn", "1", SHA, before)


def test_key_files_that_others_can_read_or_that_are_malformed_are_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "k"
    ensure_keyring(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others.*chmod 600"):
        load_keyring(path)
    path.write_text("kid1 not-hex\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"k:1: expected `<key id> <64 hex digits>`"):
        load_keyring(path)
    with pytest.raises(ConfigError, match="no signing key"):
        load_keyring(tmp_path / "missing")


def test_check_signature_refuses_a_verdict_not_accepted_here(tmp_path: Path) -> None:
    ring = ensure_keyring(tmp_path / "k")
    registered = version(ring.sign("churn", "3", SHA, REGISTERED))
    assert check_signature(registered, ANY_VERDICT, ring) == REGISTERED
    with pytest.raises(SignatureRefused, match="signed as 'registered'"):
        check_signature(registered, keyring=ring)  # default: only what may be champion
    with pytest.raises(SignatureRefused, match="version 3: no signature"):
        check_signature(version(None), ANY_VERDICT, ring)
