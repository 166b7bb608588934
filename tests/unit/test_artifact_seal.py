"""Sealed step artifacts (steps/sealed.py): what verifies and what is refused before unpickling."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from flywheel.errors import DataError
from flywheel.registry.signing import ensure_keyring, rotate_keyring
from flywheel.steps.sealed import read_sealed, seal_path, write_sealed

RERUN = "flywheel step featurize"


@pytest.fixture()
def key(tmp_path: Path) -> Path:
    path = tmp_path / ".flywheel" / "signing.key"
    ensure_keyring(path)
    return path


def refusal(path: Path, key: Path) -> str:
    with pytest.raises(DataError) as caught:
        read_sealed(path, key, RERUN)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and RERUN in message
    return message


def test_what_the_writer_sealed_reads_back(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "out" / "encodings.pkl"
    write_sealed(path, b"payload", key)
    assert read_sealed(path, key, RERUN) == b"payload"


def test_the_seal_is_hmac_sha256_over_name_and_digest(tmp_path: Path) -> None:
    """Pinned by hand, with a known key: the seal's format is a contract, not an accident."""
    key = tmp_path / "k"
    key.write_text(f"kid1 {'02' * 32}\n")
    key.chmod(0o600)
    write_sealed(tmp_path / "model.pkl", b"abc", key)
    digest = hashlib.sha256(b"abc").hexdigest().encode()
    fields = [b"flywheel-artifact", b"v1", b"model.pkl", digest]
    message = b"".join(len(f).to_bytes(4, "big") + f for f in fields)
    mac = hmac.new(bytes([2] * 32), message, hashlib.sha256).hexdigest()
    assert (tmp_path / "model.pkl.seal").read_text() == f"v1:kid1:{mac}\n"


def test_a_changed_byte_is_refused(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "model.pkl"
    write_sealed(path, b"payload", key)
    path.write_bytes(b"paylaod")
    assert "does not match" in refusal(path, key)


def test_a_missing_seal_is_refused(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"dropped in place")
    assert "model.pkl.seal is missing" in refusal(path, key)


def test_a_plain_sha256_sidecar_is_no_seal(tmp_path: Path, key: Path) -> None:
    """What the same writer could forge: the file's own digest beside it."""
    path = tmp_path / "model.pkl"
    path.write_bytes(b"dropped in place")
    seal_path(path).write_text(hashlib.sha256(b"dropped in place").hexdigest())
    assert "malformed" in refusal(path, key)


def test_a_seal_made_with_another_key_is_refused(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "model.pkl"
    write_sealed(path, b"attacker's", tmp_path / "attacker.key")
    assert "not in" in refusal(path, key)


def test_a_seal_under_a_known_key_id_but_another_secret_is_refused(
    tmp_path: Path, key: Path
) -> None:
    """The attacker copies our key id into a keyring of their own."""
    path = tmp_path / "model.pkl"
    own_id = key.read_text().splitlines()[1].split()[0]
    forged = tmp_path / "forged.key"
    forged.write_text(f"{own_id} {'ff' * 32}\n")
    forged.chmod(0o600)
    write_sealed(path, b"attacker's", forged)
    assert "does not match" in refusal(path, key)


def test_a_genuine_seal_of_another_artifact_is_refused(tmp_path: Path, key: Path) -> None:
    """encodings.pkl's bytes and seal moved to model.pkl: the seal names its file."""
    write_sealed(tmp_path / "encodings.pkl", b"encodings", key)
    (tmp_path / "model.pkl").write_bytes(b"encodings")
    genuine = seal_path(tmp_path / "encodings.pkl").read_bytes()
    seal_path(tmp_path / "model.pkl").write_bytes(genuine)
    assert "does not match" in refusal(tmp_path / "model.pkl", key)


def test_an_unreadable_seal_is_refused_in_one_line(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"x")
    seal_path(path).write_bytes(b"v1:\xff\xfe:\xe9\xe9\n\x00")
    refusal(path, key)


def test_no_key_to_verify_with_is_refused(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "model.pkl"
    write_sealed(path, b"payload", key)
    assert "no signing key" in refusal(path, tmp_path / "elsewhere.key")


def test_a_rotated_keyring_still_verifies_what_the_old_key_sealed(
    tmp_path: Path, key: Path
) -> None:
    """An artifact restored from DVC's cache after a rotation keeps loading."""
    path = tmp_path / "model.pkl"
    write_sealed(path, b"payload", key)
    rotate_keyring(key)
    assert read_sealed(path, key, RERUN) == b"payload"


def test_a_missing_file_names_the_step_that_writes_it(tmp_path: Path, key: Path) -> None:
    assert "not found" in refusal(tmp_path / "model.pkl", key)
