"""Dynamic batching: concurrent requests become one rollout batch.

Requests wait in a queue; one worker thread takes the oldest, then keeps taking requests
that can share its batch (the same sampling key: temperature, top-p, token cap, seed)
until the batch holds `max_batch_size` trajectories or `max_wait_s` has passed since the
later of the oldest request's arrival and the moment the worker became free. (Counting
from arrival alone, requests that queued during a long rollout would start the next
batch at once, and clients answered by one batch would always miss the next: two
half-size batches taking turns.) Requests with another key wait for the next batch, in
arrival order.

A batch that fails is re-run one request at a time, so one bad request fails alone and
the others are still answered; the worker itself never stops on an error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    payload: Any
    key: Hashable  # jobs share a batch only when their keys are equal
    size: int = 1  # trajectories this job adds to the batch
    arrived: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    batches: int = 0
    jobs: int = 0
    largest: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, float]:
        return {
            "batches": self.batches,
            "requests": self.jobs,
            "largest_batch": self.largest,
            "mean_batch": self.jobs / self.batches if self.batches else 0.0,
            "failed_requests": self.failures,
        }


class DynamicBatcher:
    """`submit(job) -> Future`; `run_batch(payloads) -> results` runs on the worker thread."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[Any]], Sequence[Any]],
        max_batch_size: int,
        max_wait_s: float,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_s
        self.queue: queue.Queue[Job] = queue.Queue()
        self.held: deque[Job] = deque()  # taken from the queue, waiting for a batch of their key
        self.stats = BatchStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="miva-batcher", daemon=True)

    def start(self) -> DynamicBatcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def submit(self, job: Job) -> Future:
        if self._stop.is_set():
            job.future.set_exception(RuntimeError("the server is shutting down"))
        else:
            self.queue.put(job)
        return job.future

    # ------------------------------------------------------------------ worker
    def _next(self, timeout: float) -> Job | None:
        if self.held:
            return self.held.popleft()
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _collect(self, first: Job) -> list[Job]:
        batch, size = [first], first.size
        deadline = max(first.arrived, time.monotonic()) + self.max_wait_s
        skipped: deque[Job] = deque()
        # jobs already held (another key earlier) come first, in order
        while self.held and size < self.max_batch_size:
            job = self.held.popleft()
            if job.key == first.key and size + job.size <= self.max_batch_size:
                batch.append(job)
                size += job.size
            else:
                skipped.append(job)
        while size < self.max_batch_size:
            wait = deadline - time.monotonic()
            try:
                job = self.queue.get(timeout=wait) if wait > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if job.key == first.key and size + job.size <= self.max_batch_size:
                batch.append(job)
                size += job.size
            else:
                skipped.append(job)
        skipped.extend(self.held)
        self.held = skipped
        return batch

    def _loop(self) -> None:
        while not self._stop.is_set():
            first = self._next(timeout=0.1)
            if first is None:
                continue
            batch = [j for j in self._collect(first) if j.future.set_running_or_notify_cancel()]
            if batch:
                self._run(batch)
        for job in [*self.held, *iter_queue(self.queue)]:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError("the server is shutting down"))

    def _run(self, batch: list[Job]) -> None:
        self.stats.batches += 1
        self.stats.jobs += len(batch)
        self.stats.largest = max(self.stats.largest, sum(j.size for j in batch))
        try:
            results = list(self.run_batch([j.payload for j in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} requests")
        except Exception as exc:
            if len(batch) == 1:
                self.stats.failures += 1
                batch[0].future.set_exception(exc)
                return
            for job in batch:  # isolate the request that fails
                try:
                    job.future.set_result(self.run_batch([job.payload])[0])
                except Exception as one:
                    self.stats.failures += 1
                    job.future.set_exception(one)
            return
        for job, result in zip(batch, results, strict=True):
            job.future.set_result(result)


def iter_queue(q: queue.Queue) -> list[Job]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out
