"""GreedyBatcher: a lone request is scored alone at once; those arriving meanwhile share a call."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from flywheel.serving.batching import GreedyBatcher


class Model:
    """Doubles numbers; the first call blocks until released, so requests pile up behind it."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.keys: list[Any] = []
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, records: list[Any], key: Any = None) -> list[Any]:
        self.calls.append(list(records))
        self.keys.append(key)
        if len(self.calls) == 1:
            self.release.wait(5)
        if self.fail_on in records:
            raise ValueError(f"cannot score {self.fail_on}")
        return [2 * r for r in records]


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_lone_requests_are_scored_one_call_each() -> None:
    model = Model()
    model.release.set()
    sizes: list[int] = []
    batcher = GreedyBatcher(model, max_batch_size=8, observe=sizes.append)

    async def one_by_one() -> list[list[int]]:
        return [await batcher([n]) for n in range(3)]

    assert run(one_by_one()) == [[0], [2], [4]]
    assert model.calls == [[0], [1], [2]] and sizes == [1, 1, 1]


async def _burst(batcher: GreedyBatcher, model: Model, bodies: list[list[int]]) -> list[Any]:
    first = asyncio.ensure_future(batcher(bodies[0]))
    while not model.calls:  # the model is now busy with the first request
        await asyncio.sleep(0.001)
    rest = [asyncio.ensure_future(batcher(body)) for body in bodies[1:]]
    await asyncio.sleep(0.01)
    model.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_requests_arriving_while_busy_share_calls_up_to_the_batch_size() -> None:
    model = Model()
    batcher = GreedyBatcher(model, max_batch_size=4)
    answers = run(_burst(batcher, model, [[0], [1, 2], [3], [4], [5, 6, 7]]))
    assert answers == [[0], [2, 4], [6], [8], [10, 12, 14]]  # each gets its own, in order
    assert model.calls == [[0], [1, 2, 3, 4], [5, 6, 7]]


def test_an_error_reaches_only_the_request_that_caused_it() -> None:
    """A record that breaks the model fails its own request; the one batched with it is
    scored again alone and answered (issue 18: one client's lone surrogate failed 595 others)."""
    model = Model(fail_on=3)
    batcher = GreedyBatcher(model, max_batch_size=2)
    answers = run(_burst(batcher, model, [[0], [1], [3], [4]]))
    assert model.calls == [[0], [1, 3], [1], [3], [4]]
    assert answers[0] == [0] and answers[1] == [2] and answers[3] == [8]
    assert isinstance(answers[2], ValueError) and "cannot score 3" in str(answers[2])


def test_requests_for_different_models_never_share_a_call() -> None:
    """Across a hot swap, records validated for one model are scored by that model alone."""
    model = Model()
    batcher = GreedyBatcher(model, max_batch_size=8)
    old, new = object(), object()

    async def burst() -> list[Any]:
        first = asyncio.ensure_future(batcher([0], old))
        while not model.calls:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(batcher([n], key))
                for n, key in ((1, old), (2, new), (3, new), (4, old))]
        await asyncio.sleep(0.01)
        model.release.set()
        return await asyncio.gather(first, *rest)

    assert run(burst()) == [[0], [2], [4], [6], [8]]
    assert model.calls == [[0], [1], [2, 3], [4]]
    assert model.keys == [old, old, new, old]
