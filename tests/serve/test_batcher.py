"""The dynamic batcher on its own: grouping, size cap, wait limit, failure isolation."""

from __future__ import annotations

import threading
import time

import pytest

from miva.serve.batcher import DynamicBatcher, Job


def test_concurrent_jobs_share_a_batch_up_to_the_size_cap():
    seen: list[list[int]] = []

    def run(payloads):
        seen.append(list(payloads))
        return [p * 10 for p in payloads]

    b = DynamicBatcher(run, max_batch_size=4, max_wait_s=0.5).start()
    try:
        futures = [b.submit(Job(i, key="greedy")) for i in range(10)]
        assert [f.result(5) for f in futures] == [i * 10 for i in range(10)]
    finally:
        b.stop()
    assert [len(s) for s in seen] == [4, 4, 2]  # all queued before the first wait ended
    assert sorted(p for s in seen for p in s) == list(range(10))


def test_jobs_with_other_sampling_settings_wait_for_their_own_batch():
    seen: list[list[str]] = []
    b = DynamicBatcher(lambda ps: seen.append(list(ps)) or list(ps), 8, 0.3).start()
    try:
        futures = [
            b.submit(Job(name, key=key))
            for name, key in [("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b"), ("a3", "a")]
        ]
        assert [f.result(5) for f in futures] == ["a1", "b1", "a2", "b2", "a3"]
    finally:
        b.stop()
    assert seen == [["a1", "a2", "a3"], ["b1", "b2"]]


def test_sizes_count_trajectories_not_requests():
    seen = []
    b = DynamicBatcher(lambda ps: seen.append(list(ps)) or list(ps), 4, 0.3).start()
    try:
        futures = [b.submit(Job(i, key=0, size=3)) for i in range(3)]
        [f.result(5) for f in futures]
    finally:
        b.stop()
    assert seen == [[0], [1], [2]]  # 3 + 3 > 4: one request per batch


def test_a_lone_request_waits_at_most_the_wait_limit():
    b = DynamicBatcher(lambda ps: list(ps), 32, 0.05).start()
    try:
        t0 = time.monotonic()
        assert b.submit(Job("x", key=0)).result(5) == "x"
        # generous bound: the point is that it does not wait for a full batch forever
        assert time.monotonic() - t0 < 2.0
    finally:
        b.stop()


def test_a_failing_request_fails_alone_and_the_worker_keeps_going():
    def run(payloads):
        if "bad" in payloads:
            raise ValueError("cannot roll out 'bad'")
        return [p.upper() for p in payloads]

    gate = threading.Event()
    b = DynamicBatcher(run, 8, 0.3).start()
    try:
        futures = [b.submit(Job(p, key=0)) for p in ["ok1", "bad", "ok2"]]
        assert futures[0].result(5) == "OK1" and futures[2].result(5) == "OK2"
        with pytest.raises(ValueError, match="'bad'"):
            futures[1].result(5)
        assert b.submit(Job("later", key=0)).result(5) == "LATER"
        gate.set()
    finally:
        b.stop()
    assert b.stats.failures == 1


def test_stop_fails_what_is_still_queued():
    started, release = threading.Event(), threading.Event()

    def run(payloads):
        started.set()
        release.wait(5)
        return list(payloads)

    b = DynamicBatcher(run, 1, 0.0).start()
    first = b.submit(Job(1, key=0))
    started.wait(5)
    second = b.submit(Job(2, key=0))
    b._stop.set()
    release.set()
    assert first.result(5) == 1
    b.stop()
    with pytest.raises(RuntimeError, match="shutting down"):
        second.result(5)
