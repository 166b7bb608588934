"""A pause point for crash tests: `FLYWHEEL_TEST_PAUSE_AT=<name>` stops the process there.

The fault tests SIGKILL a run at exact moments (a step folder staged but not swapped in, a
version registered but no alias moved yet). Timing a kill from outside would race; instead
the process announces `paused at <name>` on stderr and sleeps until killed. Unset (always, in
real use) this is one dictionary lookup.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "FLYWHEEL_TEST_PAUSE_AT"
MAX_PAUSE_S = 600  # a forgotten test process still ends


def pause_point(name: str) -> None:
    if os.environ.get(ENV) != name:
        return
    print(f"paused at {name}", file=sys.stderr, flush=True)
    time.sleep(MAX_PAUSE_S)
