"""Keep the garbage collector's full passes off the request path.

A worker holds ~400,000 objects the cycle collector tracks once the model is loaded (MLflow,
scikit-learn, pandas, pydantic, BentoML). Under load CPython ran a full collection every ~2 s,
each walking all of them with the GIL held: ~250 ms during which every request in flight
waited. That one stall was the p99 at 32 clients. Here the loaded process is settled:
collected, then frozen (`gc.freeze`), so later full passes walk only what requests created
since; and young collections run less often, so a request's objects are freed by reference
counting before a collection promotes them to an older generation.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

# Allocations (less deallocations) between young collections; CPython's default is 700. At 32
# clients ~30 requests' objects are alive at any time: with 700 they outlived several young
# passes and piled up in the oldest generation, triggering full passes.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collect what is not frozen yet and freeze what survives: call when a model was loaded.

    At start that is everything: one ~250 ms pass, instead of one every few seconds under load.
    After a model swap only the new model and what requests left since are walked (55 ms under
    a 32-client load, measured, against ~300 ms for a full pass). Frozen objects are never
    collected: the reference cycles of a replaced model stay (10 objects for the default
    model, measured), which is why nothing is unfrozen to reclaim them at a full pass's price.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)


def time_pauses(observe: Callable[[int, float], None], every_s: float = 1.0) -> None:
    """Hand every collection's pause to `observe(generation, seconds)`, once per process.

    Each pause holds every request in flight: the histogram this feeds shows a p99 coming from
    the collector again. The collector's callback only appends to a deque: prometheus_client's
    multiprocess values share one lock, and a collection can start in a thread that holds it,
    so observing there could deadlock. A daemon thread passes the pauses on every `every_s`.
    """
    if any(getattr(callback, "flywheel_pauses", False) for callback in gc.callbacks):
        return
    pauses: deque[tuple[int, float]] = deque(maxlen=10_000)
    started = 0.0

    def callback(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started))

    def report() -> None:
        while True:
            time.sleep(every_s)
            while pauses:
                observe(*pauses.popleft())

    callback.flywheel_pauses = True  # type: ignore[attr-defined]
    gc.callbacks.append(callback)
    threading.Thread(target=report, name="flywheel-gc-pauses", daemon=True).start()
