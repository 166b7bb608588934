"""A `.dvc` text from a registry tag restores `data/` and nothing else (data/dvc_text.py)."""

from __future__ import annotations

import pytest
import yaml

from flywheel.data.dvc_text import UnsafeDvcText, checked_dvc_text
from tests.conftest import REPO

MD5 = "450332baca57fe561b8d6ca35a204f6f.dir"


def test_the_projects_own_data_dvc_is_accepted_as_it_is() -> None:
    text = (REPO / "data.dvc").read_text()
    assert yaml.safe_load(checked_dvc_text(text)) == yaml.safe_load(text)


def test_a_text_with_only_the_hash_gets_the_defaults() -> None:
    rebuilt = yaml.safe_load(checked_dvc_text(f"outs:\n- md5: {MD5}\n  path: data\n"))
    assert rebuilt == {"outs": [{"md5": MD5, "hash": "md5", "path": "data"}]}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"outs:\n- md5: {MD5[:32]}\n  path: src/flywheel/__init__.py\n", "output path"),
        (f"outs:\n- md5: {MD5}\n  path: ../data\n", "output path"),
        (f"outs:\n- md5: {MD5}\n  path: /etc\n", "output path"),
        (f"outs:\n- md5: {MD5}\n  path: data/../src\n", "output path"),
        (f"outs:\n- md5: {MD5}\n  path: data\n- md5: {MD5}\n  path: src\n", "exactly one"),
        (f"cmd: touch /tmp/pwned\nouts:\n- md5: {MD5}\n  path: data\n", "only `outs:`"),
        (f"outs:\n- md5: {MD5}\n  path: data\n  cache: false\n", "unexpected output fields"),
        ("outs:\n- md5: ../../etc/passwd\n  path: data\n", "md5"),
        ("outs:\n- md5: 12345\n  path: data\n", "md5"),
        (f"outs:\n- md5: {MD5}\n  path: data\n  hash: sha1\n", "hash"),
        (f"outs:\n- md5: {MD5}\n  path: data\n  size: -1\n", "size"),
        ("outs: [", "not YAML"),
        ("- just a list\n", "only `outs:`"),
        ("", "only `outs:`"),
    ],
)
def test_anything_that_could_touch_another_path_is_refused(text: str, problem: str) -> None:
    with pytest.raises(UnsafeDvcText, match=problem) as caught:
        checked_dvc_text(text)
    assert "\n" not in str(caught.value)
