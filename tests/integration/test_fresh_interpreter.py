"""What only a fresh interpreter shows: the package's import cost and the collector-pause
reporter's thread. Each test starts one `python -c` of its own."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_importing_the_package_pulls_in_neither_torch_nor_sklearn() -> None:
    code = ("import sys, flywheel.training, flywheel.training.candidates, "
            "flywheel.training.device; "
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_collector_pauses_reach_the_observer_from_its_own_thread() -> None:
    """In a fresh interpreter: the pause of a full collection is handed on (by generation),
    installing twice is a no-op, and the observer never runs inside the collection."""
    script = """
import gc, json, threading, time
from flywheel.serving.heap import time_pauses
seen = []
done = threading.Event()
def observe(generation, seconds):
    seen.append((generation, seconds, threading.current_thread().name))
    done.set()
time_pauses(observe, every_s=0.01)
time_pauses(observe, every_s=0.01)
gc.collect()
assert done.wait(30), "no pause reported"
time.sleep(0.05)
print(json.dumps(seen))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True, cwd=REPO)
    seen = json.loads(done.stdout)
    assert 2 in {generation for generation, _, _ in seen}
    assert {thread for _, _, thread in seen} == {"flywheel-gc-pauses"}
    assert all(seconds >= 0 for _, seconds, _ in seen)
