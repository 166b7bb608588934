"""`flywheel step validate` on a table larger than the memory it is allowed: batches, bounded.

The limit is an address-space limit (RLIMIT_AS) on the CLI's process: what validating the
default table needs (measured here, in the same way) plus the big table's own size in pandas,
so the table does not fit beside what validation needs anyway. glibc's per-thread arenas and
Arrow's jemalloc reserve address space they never use; with one arena and Arrow on the system
allocator the address space follows what is allocated, so the limit measures use.

Read in batches the table validates under that limit, with the verdict of the whole table;
read whole (the path a small file takes) it cannot.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import CLI_TIMEOUT_S, cli_command, cli_env, make_project

pytestmark = pytest.mark.slow

ROWS, BATCH_ROWS = 400_000, 50_000
ALLOCATION = {"MALLOC_ARENA_MAX": "1", "ARROW_DEFAULT_MEMORY_POOL": "system"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A project whose spec `big` reads ROWS rows of the default table, resampled, as Parquet;
    params files for batches (params.yaml), the whole read, and the default table."""
    root = make_project(tmp_path_factory.mktemp("large") / "project")
    table = pd.read_csv(root / "data/wa_churn.csv", skipinitialspace=True)
    big = table.sample(ROWS, replace=True, random_state=0).reset_index(drop=True)
    big.loc[big.index[-3:], "tenure"] = -5  # in the last batch: the table fails on its counts
    (root / "big").mkdir()
    big.to_parquet(root / "big/table.parquet", row_group_size=100_000)
    spec = yaml.safe_load((root / "specs/wa_churn.yaml").read_text())
    (root / "specs/big.yaml").write_text(yaml.safe_dump({**spec, "path": "big/table.parquet"}))
    params = yaml.safe_load((root / "params.yaml").read_text())
    for name, spec_file, whole_mb in (("params-tiny.yaml", "specs/wa_churn.yaml", 10_000),
                                      ("params-whole.yaml", "specs/big.yaml", 10_000),
                                      ("params-batches.yaml", "specs/big.yaml", 1)):
        params["data"]["spec"] = spec_file
        params["validate"].update(whole_table_max_mb=whole_mb, batch_rows=BATCH_ROWS)
        (root / name).write_text(yaml.safe_dump(params, sort_keys=False))
    return root, int(big.memory_usage(deep=True).sum())


def test_a_table_larger_than_the_memory_left_is_validated_in_batches(
    project: tuple[Path, int],
) -> None:
    root, table_bytes = project
    tiny = _validate(root, "params-tiny.yaml", limit=None)
    assert tiny.returncode == 0, tiny.stderr
    limit = tiny.peak + table_bytes

    batched = _validate(root, "params-batches.yaml", limit=limit)
    # the three bad values of the last batch fail the table, counted over all of its rows
    assert batched.returncode == 4, batched.stderr
    assert f"3 of {ROWS} values out of range" in batched.stderr
    (result,) = root.glob("artifacts/**/validate/result.json")
    record = json.loads(result.read_text())
    assert record["statistics"]["rows"] == ROWS
    assert record["ge_result"]["statistics"]["batches"] == ROWS // BATCH_ROWS
    assert [f["column"] for f in record["failures"]] == ["tenure"]
    assert batched.peak < limit

    whole = _validate(root, "params-whole.yaml", limit=limit)
    assert whole.returncode not in (0, 4), "the whole read fit under the limit: it bounds nothing"


class _Run(subprocess.CompletedProcess[str]):
    peak: int  # the largest address space seen, bytes


def _validate(root: Path, params_file: str, limit: int | None) -> _Run:
    """`flywheel step validate` under an address-space limit, its peak address space sampled."""
    def limited() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = cli_env(root, FLYWHEEL_PARAMS_FILE=params_file, **ALLOCATION)
    process = subprocess.Popen(cli_command("step", "validate"), cwd=root, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=limited)
    peak, deadline = 0, time.monotonic() + CLI_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        peak = max(peak, _vm_peak(process.pid))
        time.sleep(0.1)
    stdout, stderr = process.communicate(timeout=60)
    run = _Run(process.args, process.returncode, stdout, stderr)
    run.peak = peak
    return run


def _vm_peak(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0  # exited between the poll and the read
    peak = re.search(r"^VmPeak:\s+(\d+) kB$", status, re.M)
    return int(peak.group(1)) * 1024 if peak else 0
