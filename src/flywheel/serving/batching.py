"""Batching only under concurrency: a lone request is scored at once, never held back.

BentoML's adaptive batcher holds each request for a wait it estimates from recent traffic;
after a burst that estimate stays high, and lone requests waited ~100 ms for minutes. Here
nothing waits on a timer: a request that finds the model idle is scored immediately, and the
requests that arrive while the model is busy are scored together in the next call. Under load
batches form by themselves (one model call per batch, as before); without load there is no
batching to wait for, whatever happened earlier. Each request names the model that must answer
it (`key`: the one its records were validated for); requests for different models never share
a call, so a hot swap never hands records of one schema to a model of another.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread


@dataclass
class _Job:
    records: list[Any]
    key: Any
    answer: asyncio.Future[list[Any]]


class GreedyBatcher:
    """Runs `score(records, key)` on one list at a time, in a worker thread, in arrival order."""

    def __init__(
        self,
        score: Callable[[list[Any], Any], list[Any]],
        max_batch_size: int,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self.score = score
        self.max_batch_size = max_batch_size
        self.observe = observe  # gets the number of requests answered by each model call
        self._waiting: deque[_Job] = deque()
        self._running = False

    async def __call__(self, records: list[Any], key: Any = None) -> list[Any]:
        job = _Job(list(records), key, asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await job.answer

    async def _drain(self) -> None:
        try:
            while self._waiting:
                jobs = self._take()
                merged = [record for job in jobs for record in job.records]
                if self.observe is not None:
                    self.observe(len(jobs))
                try:
                    answers = await anyio.to_thread.run_sync(self.score, merged, jobs[0].key)
                except Exception as exc:
                    await self._one_by_one(jobs, exc)
                    continue
                start = 0
                for job in jobs:
                    if not job.answer.done():
                        job.answer.set_result(answers[start : start + len(job.records)])
                    start += len(job.records)
        finally:
            self._running = False

    async def _one_by_one(self, jobs: list[_Job], exc: Exception) -> None:
        """A failed merged call is retried per request: one client's records that break the
        model (whatever validation missed) fail that client alone, never the others."""
        for job in jobs:
            if job.answer.done():  # a client that left cancelled its own
                continue
            if len(jobs) == 1:
                job.answer.set_exception(exc)
                continue
            try:
                answers = await anyio.to_thread.run_sync(self.score, job.records, job.key)
            except Exception as own:
                answers, exc = None, own
            if job.answer.done():
                continue
            if answers is None:
                job.answer.set_exception(exc)
            else:
                job.answer.set_result(answers)

    def _take(self) -> list[_Job]:
        """Waiting jobs in order for one key, up to max_batch_size records (at least one job)."""
        taken = [self._waiting.popleft()]
        size = len(taken[0].records)
        while (self._waiting and size + len(self._waiting[0].records) <= self.max_batch_size
               and self._waiting[0].key is taken[0].key):
            job = self._waiting.popleft()
            taken.append(job)
            size += len(job.records)
        return taken
