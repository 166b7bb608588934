"""Keep the garbage collector's full passes off the request path.

A worker holds ~400,000 objects the cycle collector tracks once the model is loaded (MLflow,
scikit-learn, pandas, pydantic, BentoML). Under load CPython ran a full collection every ~2 s,
each walking all of them with the GIL held: ~250 ms during which every request in flight
waited. That one stall was the p99 at 32 clients. Here the loaded process is settled once:
collected, then frozen (`gc.freeze`), so later full passes walk only what requests created
since; and young collections run less often, so a request's objects are freed by reference
counting before a collection promotes them to an older generation.
"""

from __future__ import annotations

import gc

# Allocations (less deallocations) between young collections; CPython's default is 700. At 32
# clients ~30 requests' objects are alive at any time: with 700 they outlived several young
# passes and piled up in the oldest generation, triggering full passes.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collect once and freeze what survives: call when a model was (re)loaded.

    The full collection costs one ~250 ms pause per start or model swap instead of one every
    few seconds under load. Unfreezing first lets the collection free the previous model's
    reference cycles (frozen objects are never collected), so swaps do not accumulate them.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
