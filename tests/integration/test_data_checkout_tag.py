"""Issue 18, item 9: a registry tag cannot make `flywheel data checkout` overwrite a file.

A registry writer sets a version's `flywheel.data_dvc` to a `.dvc` text naming
`src/flywheel/__init__.py`. The CLI, run as a user runs it in a real project, refuses with one
line (exit 3) before DVC is touched: the file, data.dvc and data/ stay as they were.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from flywheel.errors import DataError

BIN = Path(sys.executable).parent


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_crafted_data_dvc_tag_is_refused_in_one_line(project: Path) -> None:
    import mlflow

    from flywheel.config import load_params

    target = project / "src" / "flywheel" / "__init__.py"
    target.parent.mkdir(parents=True)
    target.write_text('"""the package"""\n')
    name = load_params(project / "params.yaml").promote.model_name
    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(name)
    crafted = "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: src/flywheel/__init__.py\n"
    client.create_model_version(name, (project / "nowhere").as_uri(),
                                tags={"flywheel.data_dvc": crafted,
                                      "flywheel.data_md5": "0123456789abcdef0123456789abcdef"})
    before = {p: digest(p) for p in (target, project / "data.dvc")}
    done = subprocess.run([str(BIN / "flywheel"), "data", "checkout", "--version", "1"],
                          cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == DataError.exit_code, done.stderr[-2000:]
    message = " ".join(done.stderr.split())
    assert "tag flywheel.data_dvc refused (output path 'src/flywheel/__init__.py'" in message
    assert {p: digest(p) for p in before} == before

