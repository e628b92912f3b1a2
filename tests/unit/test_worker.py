"""The local-model worker (bounded FIFO queue, 429 when full) and the outbox that carries
chunks from its thread to the event loop."""

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from smallfirst.backends.worker import DONE, ModelWorker, Outbox, received
from smallfirst.completions import Chunk, TokenLogprob, Usage
from smallfirst.errors import QueueFull


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
    with pytest.raises(QueueFull) as error:
        await worker.run(lambda: job(99))
    assert error.value.status == 429
    gate.set()
    assert await asyncio.gather(*running) == [0, 1, 2]
    assert order == [0, 1, 2]
    worker.shutdown()


class Producer:
    """Emits through an outbox from its own thread, as a model's worker thread does."""

    def __init__(self, interval_s: float) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.outbox = Outbox(asyncio.get_running_loop(), self.queue, interval_s)

    def start(self, produce: Callable[[Outbox], None]) -> threading.Thread:
        def run() -> None:
            produce(self.outbox)
            self.outbox.put(DONE)

        thread = threading.Thread(target=run)
        thread.start()
        return thread


async def test_an_error_reaches_the_consumer_after_what_came_before() -> None:
    producer = Producer(interval_s=0.0)

    def broken(outbox: Outbox) -> None:
        outbox.put(Chunk(text="a"))
        outbox.put(QueueFull("boom"))

    producer.start(broken).join()
    chunks = received(producer.queue)
    assert (await anext(chunks)).text == "a"
    with pytest.raises(QueueFull, match="boom"):
        await anext(chunks)


async def test_a_stream_interval_merges_tokens_but_sends_the_first_at_once() -> None:
    producer = Producer(interval_s=0.2)
    logprob = TokenLogprob(token="x", logprob=-0.5)

    def tokens(outbox: Outbox) -> None:
        for n in range(6):
            outbox.put(Chunk(text=str(n), logprobs=[logprob]))
            time.sleep(0.01)
        outbox.put(Chunk(finish_reason="stop", usage=Usage(prompt_tokens=1, completion_tokens=6)))

    thread = producer.start(tokens)
    chunks = [chunk async for chunk in received(producer.queue)]
    thread.join()
    assert chunks[0].text.startswith("0")
    assert "".join(c.text for c in chunks) == "012345"  # nothing lost, order kept
    assert sum(len(c.logprobs or []) for c in chunks) == 6
    assert len(chunks) < 7  # later tokens travelled together
    assert chunks[-1].finish_reason == "stop"


async def test_a_held_token_is_sent_within_the_interval_even_if_no_other_follows() -> None:
    producer = Producer(interval_s=0.05)
    first_seen, release = threading.Event(), threading.Event()

    def slow(outbox: Outbox) -> None:
        outbox.put(Chunk(text="a"))
        first_seen.wait(5)
        outbox.put(Chunk(text="b"))  # held: within the interval after "a" was delivered
        release.wait(5)
        outbox.put(Chunk(finish_reason="stop", usage=Usage(prompt_tokens=1, completion_tokens=2)))

    thread = producer.start(slow)
    chunks = received(producer.queue)
    first = await anext(chunks)  # the first token is sent at once, not after the interval
    first_seen.set()
    second = await asyncio.wait_for(anext(chunks), timeout=2)  # comes without the finish
    release.set()
    rest = [chunk async for chunk in chunks]
    thread.join()
    assert (first.text, second.text) == ("a", "b")
    assert rest[-1].finish_reason == "stop"
