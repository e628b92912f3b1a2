"""The local-model worker: bounded FIFO queue, 429 when full, cancellation on disconnect."""

import asyncio
import threading
import time

import pytest

from smallfirst.backends.worker import Emit, ModelWorker
from smallfirst.errors import QueueFull
from smallfirst.types import Chunk, TokenLogprob, Usage


async def test_queue_full_is_429_and_fifo_order_is_kept() -> None:
    worker = ModelWorker("m", queue_size=2)
    gate = threading.Event()
    order: list[int] = []

    def job(n: int) -> int:
        gate.wait(5)
        order.append(n)
        return n

    running = [asyncio.ensure_future(worker.run(lambda n=n: job(n))) for n in range(3)]
    await asyncio.sleep(0.05)
    assert worker.queue_depth() == 2
    queued_by = time.monotonic()  # jobs 1 and 2 were queued before this
    with pytest.raises(QueueFull) as error:
        await worker.run(lambda: job(99))
    assert error.value.status == 429
    await asyncio.sleep(0.05)
    held_at_least = time.monotonic() - queued_by
    gate.set()
    assert await asyncio.gather(*running) == [0, 1, 2]
    assert order == [0, 1, 2]
    # jobs 1 and 2 waited behind job 0, which held the worker until the gate opened
    assert worker.started_jobs == 3
    assert worker.waited_s >= 2 * held_at_least
    worker.shutdown()


async def test_a_stream_on_a_full_queue_is_429_not_a_hang() -> None:
    worker = ModelWorker("m", queue_size=0)
    gate = threading.Event()
    running = asyncio.ensure_future(worker.run(lambda: gate.wait(5)))
    await asyncio.sleep(0.05)

    def never_runs(emit: Emit, cancelled: threading.Event) -> None:
        raise AssertionError("a job past a full queue must not run")

    try:
        with pytest.raises(QueueFull):
            await asyncio.wait_for(anext(worker.stream(never_runs)), timeout=5)
    finally:
        gate.set()
        await running
        worker.shutdown()


async def test_closing_a_stream_cancels_the_job_and_frees_the_worker() -> None:
    worker = ModelWorker("m", queue_size=4)
    produced: list[int] = []

    def endless(emit: Emit, cancelled: threading.Event) -> None:
        n = 0
        while not cancelled.is_set() and n < 100_000:
            produced.append(n)
            emit(Chunk(text=str(n)))
            n += 1
            cancelled.wait(0.001)

    stream = worker.stream(endless)
    seen = [await anext(stream) for _ in range(3)]
    assert [c.text for c in seen] == ["0", "1", "2"]
    await stream.aclose()
    # the next job runs, so the worker was freed; the endless job stopped early
    assert await worker.run(lambda: "next") == "next"
    assert len(produced) < 100_000
    assert worker.cancelled_jobs == 1
    worker.shutdown()


async def test_errors_in_the_job_reach_the_consumer() -> None:
    worker = ModelWorker("m", queue_size=1)

    def broken(emit: Emit, cancelled: threading.Event) -> None:
        emit(Chunk(text="a"))
        raise QueueFull("boom")

    stream = worker.stream(broken)
    assert (await anext(stream)).text == "a"
    with pytest.raises(QueueFull, match="boom"):
        await anext(stream)
    worker.shutdown()


async def test_a_stream_interval_merges_tokens_but_sends_the_first_at_once() -> None:
    worker = ModelWorker("m", queue_size=1, stream_interval_s=0.2)
    logprob = TokenLogprob(token="x", logprob=-0.5)

    def tokens(emit: Emit, cancelled: threading.Event) -> None:
        for n in range(6):
            emit(Chunk(text=str(n), logprobs=[logprob]))
            time.sleep(0.01)
        emit(Chunk(finish_reason="stop", usage=Usage(prompt_tokens=1, completion_tokens=6)))

    chunks = [chunk async for chunk in worker.stream(tokens)]
    worker.shutdown()
    assert chunks[0].text.startswith("0")
    assert "".join(c.text for c in chunks) == "012345"  # nothing lost, order kept
    assert sum(len(c.logprobs or []) for c in chunks) == 6
    assert len(chunks) < 7  # later tokens travelled together
    assert chunks[-1].finish_reason == "stop"


async def test_a_held_token_is_sent_within_the_interval_even_if_no_other_follows() -> None:
    worker = ModelWorker("m", queue_size=1, stream_interval_s=0.05)
    first_seen, release = threading.Event(), threading.Event()

    def slow(emit: Emit, cancelled: threading.Event) -> None:
        emit(Chunk(text="a"))
        first_seen.wait(5)
        emit(Chunk(text="b"))  # held: within the interval after "a" was delivered
        release.wait(5)
        emit(Chunk(finish_reason="stop", usage=Usage(prompt_tokens=1, completion_tokens=2)))

    stream = worker.stream(slow)
    first = await anext(stream)  # the first token is sent at once, not after the interval
    first_seen.set()
    second = await asyncio.wait_for(anext(stream), timeout=2)  # comes without the finish
    release.set()
    rest = [chunk async for chunk in stream]
    worker.shutdown()
    assert (first.text, second.text) == ("a", "b")
    assert rest[-1].finish_reason == "stop"
