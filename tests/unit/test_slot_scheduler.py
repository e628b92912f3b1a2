"""Admission into slots (`backends/slot_scheduler.py`) with a fake decoder: capacity, and
that every error reaches the request it belongs to while the others go on."""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial
from typing import Any

import pytest

from smallfirst.backends.llamacpp_answer import AnswerWriter, PreparedPrompt
from smallfirst.backends.llamacpp_slots import SlotJob
from smallfirst.backends.slot_scheduler import SlotScheduler
from smallfirst.backends.worker import DONE, ModelWorker, Outbox
from smallfirst.choices import fan_out
from smallfirst.completions import Chunk, Usage
from smallfirst.errors import InvalidRequest, ModelUnavailable, QueueFull
from smallfirst.types import TextRequest
from smallfirst.usage_so_far import UsageSoFar, counting


class FakeSlots:
    """Each busy slot answers "<prompt>!" in one step, once `gate` is open."""

    def __init__(self, parallel: int) -> None:
        self.parallel = parallel
        self.jobs: list[SlotJob] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_next_step = False
        self.endless_tokens = 0
        self.answer_s = 0.0  # how long each answer looks to have been in its slot

    @property
    def free_slots(self) -> int:
        return self.parallel - len(self.jobs)

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def start(self, job: SlotJob, prompt: str) -> int:
        assert job.admitted is not None
        job.admitted -= self.answer_s
        self.jobs.append(job)
        tokens = list(prompt.encode())  # a token a byte; an endless answer's are its numbers
        job.answer = AnswerWriter(
            PreparedPrompt(tokens, max_tokens=1_000_000, stop=[]),
            job.emit,
            token_bytes=lambda token: str(token).encode(),
            is_end=lambda token: False,
            cached_tokens=0,
        )
        return 0

    def step(self) -> list[SlotJob]:
        """As the real slots do: a cancelled job ends without an answer; an "endless" one
        emits a token per step until then."""
        self.gate.wait(5)
        if self.fail_next_step:
            self.fail_next_step = False
            raise RuntimeError("llama_decode failed with status -1")
        ended = [job for job in self.jobs if job.cancelled.is_set()]
        for job in self.jobs:
            if job in ended:
                continue
            if job.request.prompt == "endless" and job.answer is not None:
                self.endless_tokens += 1
                job.answer.add(self.endless_tokens)
                time.sleep(0.001)
                continue
            job.emit(Chunk(text=f"{job.request.prompt}!"))
            job.emit(Chunk(finish_reason="stop", usage=Usage(completion_tokens=1)))
            ended.append(job)
        self.jobs = [job for job in self.jobs if job not in ended]
        return ended

    def clear(self) -> list[SlotJob]:
        jobs, self.jobs = self.jobs, []
        return jobs


class FakeEngine:
    def __init__(self, parallel: int) -> None:
        self.slots = FakeSlots(parallel)
        self.loads = 0
        self.fail_load = False

    def load(self) -> FakeEngine:
        self.loads += 1
        if self.fail_load:
            raise ModelUnavailable("model file not found: /nowhere.gguf")
        return self

    def prepare(self, request: TextRequest) -> str:
        if request.prompt == "too long":
            raise InvalidRequest("This model's maximum context length is 2048 tokens.")
        return request.prompt_text


def request(prompt: str) -> TextRequest:
    return TextRequest(model="m", prompt=prompt)


async def text_of(scheduler: SlotScheduler, engine: FakeEngine, prompt: str) -> str:
    load: Any = engine.load
    return "".join([chunk.text async for chunk in scheduler.stream(request(prompt), load)])


@pytest.fixture
def worker() -> Any:
    worker = ModelWorker("m", queue_size=4)
    yield worker
    worker.shutdown()


async def test_a_refused_request_is_told_when_the_answers_ahead_should_have_ended(
    worker: ModelWorker,
) -> None:
    async def refused_after_filling(answer_s: float) -> int | None:
        engine = FakeEngine(parallel=2)
        engine.slots.answer_s = answer_s
        scheduler = SlotScheduler(worker, parallel=2, queue_size=1)
        first = await text_of(scheduler, engine, "x")  # one answer timed, or none
        engine.slots.gate.clear()
        answers = [asyncio.ensure_future(text_of(scheduler, engine, p)) for p in "abc"]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull) as refused:
            await text_of(scheduler, engine, "d")
        engine.slots.gate.set()
        assert [first, *await asyncio.gather(*answers)] == ["x!", "a!", "b!", "c!"]
        return refused.value.retry_after_s

    assert await refused_after_filling(0.0) == 1  # answers faster than a second: the least
    # 3 answers ahead in 2 slots: two rounds of ~10 s (was 1 whatever the answers took)
    assert 20 <= (await refused_after_filling(10.0) or 0) <= 21
    assert await refused_after_filling(1000.0) == 60  # the most the openai SDK waits


async def test_requests_beyond_slots_and_queue_are_429(worker: ModelWorker) -> None:
    engine = FakeEngine(parallel=2)
    engine.slots.gate.clear()
    scheduler = SlotScheduler(worker, parallel=2, queue_size=1)
    answers = [asyncio.ensure_future(text_of(scheduler, engine, p)) for p in "abc"]
    await asyncio.sleep(0.05)
    assert scheduler.queue_depth() == 1
    waiting_since = time.monotonic()  # "c" was queued before this
    with pytest.raises(QueueFull) as refused:
        await text_of(scheduler, engine, "d")
    assert "2 slots" in refused.value.message
    await asyncio.sleep(0.05)
    held_at_least = time.monotonic() - waiting_since
    engine.slots.gate.set()
    assert await asyncio.gather(*answers) == ["a!", "b!", "c!"]
    assert scheduler.started_jobs == 3
    assert scheduler.waited_s >= held_at_least  # "c" waited for a slot until the gate opened
    assert scheduler.queue_depth() == 0


async def test_with_no_queue_a_free_slot_is_not_refused_for_a_loop_that_ends() -> None:
    """With `queue_size: 0`, a request that came as the last decode loop ended was a 429
    "0 jobs are waiting" (the worker still counted that loop), and so were all waiting with
    it. Here a job that never ends holds the worker's place as such a loop does."""
    worker = ModelWorker("m", queue_size=0)
    held = threading.Event()
    holding = asyncio.ensure_future(worker.run(held.wait))
    await asyncio.sleep(0.01)
    try:
        scheduler = SlotScheduler(worker, parallel=2, queue_size=0)
        answer = asyncio.ensure_future(text_of(scheduler, FakeEngine(parallel=2), "a"))
        await asyncio.sleep(0.01)
        held.set()
        assert await answer == "a!"
        await holding
    finally:
        held.set()
        worker.shutdown()


async def test_n_answers_in_reserved_places_are_not_refused_half_way(worker: ModelWorker) -> None:
    """Four answers through two slots while other clients retry on 429 all along: a place
    one of the four gave up went to another client, and a later one of the four was a 429
    after the first two were made (the whole request failed)."""
    engine = FakeEngine(parallel=2)
    engine.slots.gate.clear()  # the first two answers hold the slots until the others come
    scheduler = SlotScheduler(worker, parallel=2, queue_size=1)
    load: Any = engine.load
    others_answered = 0
    stop = asyncio.Event()

    async def other_client() -> None:
        nonlocal others_answered
        while not stop.is_set():
            try:
                others_answered += len([c async for c in scheduler.stream(request("x"), load)])
            except QueueFull:
                await asyncio.sleep(0)

    async def four_answers() -> list[str]:
        asked = TextRequest(model="m", prompt="q", n=4)
        with scheduler.reserve(2) as places:
            opener = partial(scheduler.stream, engine=load, places=places)
            return [c.text async for c in fan_out(opener, asked, places.count) if c.text]

    asked = asyncio.ensure_future(four_answers())
    await asyncio.sleep(0.02)
    others = [asyncio.ensure_future(other_client()) for _ in range(3)]
    await asyncio.sleep(0.02)
    with pytest.raises(QueueFull), scheduler.reserve(2):  # two places held, one free
        pass
    engine.slots.gate.set()
    try:
        assert await asyncio.wait_for(asked, 10) == ["q!"] * 4
    finally:
        stop.set()
        await asyncio.gather(*others)
    assert others_answered  # the free place served the others meanwhile


async def test_the_next_of_n_answers_finds_the_place_the_last_one_gave_back(
    worker: ModelWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The place went back after the answer's end was handed over: the next answer, started
    at once, found none and was a 429 "0 answers are waiting" half-way through the request.
    Here the worker thread is slow right after handing an end over."""
    put = Outbox.put

    def slow_after_the_end(outbox: Outbox, item: object) -> None:
        put(outbox, item)
        if item is DONE:
            time.sleep(0.05)

    monkeypatch.setattr(Outbox, "put", slow_after_the_end)
    scheduler = SlotScheduler(worker, parallel=1, queue_size=0)
    load: Any = FakeEngine(parallel=1).load
    asked = TextRequest(model="m", prompt="q", n=3)
    with scheduler.reserve(1) as places:
        opener = partial(scheduler.stream, engine=load, places=places)
        texts = [c.text async for c in fan_out(opener, asked, places.count) if c.text]
    assert texts == ["q!"] * 3


async def test_a_client_that_leaves_the_queue_gives_its_place_up_at_once(
    worker: ModelWorker,
) -> None:
    """Its place was kept until a slot would have admitted it: clients that timed out and
    retried filled the queue with dead places, and new requests got 429 for minutes."""
    engine = FakeEngine(parallel=1)
    engine.slots.gate.clear()
    scheduler = SlotScheduler(worker, parallel=1, queue_size=1)
    busy = asyncio.ensure_future(text_of(scheduler, engine, "a"))
    await asyncio.sleep(0.05)
    waiting = scheduler.stream(request("b"), engine.load)  # type: ignore[arg-type]
    queued = asyncio.ensure_future(anext(waiting))
    await asyncio.sleep(0.05)
    assert scheduler.queue_depth() == 1
    queued.cancel()  # the client gives up while its request waits
    await asyncio.gather(queued, return_exceptions=True)
    await waiting.aclose()
    assert scheduler.queue_depth() == 0
    third = asyncio.ensure_future(text_of(scheduler, engine, "c"))  # not a 429
    engine.slots.gate.set()
    assert await asyncio.gather(busy, third) == ["a!", "c!"]
    assert scheduler.cancelled_jobs == 1


async def test_an_answer_whose_client_leaves_right_after_its_end_is_not_counted_cancelled(
    worker: ModelWorker,
) -> None:
    """The client's stream marks the job it leaves as cancelled; when that ran between the
    end of the answer and its count (CI saw it once), a good answer counted as cancelled."""
    engine = FakeEngine(parallel=1)
    scheduler = SlotScheduler(worker, parallel=1, queue_size=1)
    start = engine.slots.start

    def start_with_a_quick_client(job: SlotJob, prompt: str) -> int:
        emit = job.emit

        def emit_then_leave(item: object) -> None:
            emit(item)
            if item is DONE:
                job.cancelled.set()  # as if the loop ran the stream's `finally` at once

        job.emit = emit_then_leave
        return start(job, prompt)

    engine.slots.start = start_with_a_quick_client  # type: ignore[method-assign]
    assert await text_of(scheduler, engine, "a") == "a!"
    assert scheduler.cancelled_jobs == 0


async def test_closing_a_stream_cancels_its_answer_and_frees_the_slot(
    worker: ModelWorker,
) -> None:
    engine = FakeEngine(parallel=1)
    scheduler = SlotScheduler(worker, parallel=1, queue_size=1)
    load: Any = engine.load
    stream = scheduler.stream(request("endless"), load)
    seen = ""
    while len(seen) < 3:  # tokens that wait together for a slow loop arrive as one chunk
        seen += (await anext(stream)).text
    assert seen.startswith("123")
    await stream.aclose()
    assert await text_of(scheduler, engine, "next") == "next!"  # the one slot is free again
    assert engine.slots.endless_tokens < 1000
    assert scheduler.cancelled_jobs == 1


async def test_a_call_counts_the_tokens_of_its_answers_once_a_slot_has_them(
    worker: ModelWorker,
) -> None:
    """The call's `usage_so_far`: an answer closed early counts its prompt and the tokens
    written so far (the request log's numbers for it); one left while it waited for a slot
    read nothing."""
    engine = FakeEngine(parallel=1)
    scheduler = SlotScheduler(worker, parallel=1, queue_size=1)
    load: Any = engine.load
    answering, waiting = UsageSoFar(), UsageSoFar()
    called = counting.set(answering)
    stream = scheduler.stream(request("endless"), load)
    seen = ""
    while len(seen) < 3:
        seen += (await anext(stream)).text
    counting.set(waiting)
    queued = scheduler.stream(request("queued"), load)
    first = asyncio.ensure_future(anext(queued))
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await queued.aclose()
    await stream.aclose()
    counting.reset(called)
    usage = answering.usage()
    assert usage is not None
    assert usage.prompt_tokens == len("endless")
    assert 3 <= usage.completion_tokens <= engine.slots.endless_tokens
    assert waiting.usage() is None


async def test_a_request_error_ends_that_request_only(worker: ModelWorker) -> None:
    engine = FakeEngine(parallel=2)
    scheduler = SlotScheduler(worker, parallel=2, queue_size=4)
    results = await asyncio.gather(
        text_of(scheduler, engine, "a"),
        text_of(scheduler, engine, "too long"),
        return_exceptions=True,
    )
    assert results[0] == "a!"
    assert isinstance(results[1], InvalidRequest)


async def test_a_failed_step_ends_the_answers_under_way_and_the_loop_goes_on(
    worker: ModelWorker,
) -> None:
    engine = FakeEngine(parallel=2)
    engine.slots.fail_next_step = True
    scheduler = SlotScheduler(worker, parallel=2, queue_size=4)
    with pytest.raises(RuntimeError, match="llama_decode failed"):
        await text_of(scheduler, engine, "a")
    assert await text_of(scheduler, engine, "b") == "b!"


async def test_a_model_that_cannot_load_fails_its_waiting_requests(worker: ModelWorker) -> None:
    engine = FakeEngine(parallel=2)
    engine.fail_load = True
    scheduler = SlotScheduler(worker, parallel=2, queue_size=4)
    with pytest.raises(ModelUnavailable):
        await text_of(scheduler, engine, "a")
    engine.fail_load = False
    assert await text_of(scheduler, engine, "b") == "b!"  # the next request loads it again
    assert engine.loads == 2


async def test_a_request_no_slot_takes_within_queue_timeout_s_is_429(
    worker: ModelWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a remote model's call waiting for a connection: it waited for good, however long
    the answers ahead ran, until its client gave up. Its place is free once it hears the 429
    (it was given back after: the worker thread slow right after handing the 429 over, here,
    and the queue still counted the refused request)."""
    put = Outbox.put

    def slow_after_an_error(outbox: Outbox, item: object) -> None:
        put(outbox, item)
        if isinstance(item, BaseException):
            time.sleep(0.2)

    monkeypatch.setattr(Outbox, "put", slow_after_an_error)
    engine = FakeEngine(parallel=1)
    scheduler = SlotScheduler(worker, parallel=1, queue_size=4, queue_timeout_s=0.05)
    load: Any = engine.load
    endless = scheduler.stream(request("endless"), load)
    await anext(endless)  # the one slot is taken for as long as this client reads
    with pytest.raises(QueueFull) as refused:
        await asyncio.wait_for(text_of(scheduler, engine, "b"), 10)
    assert "queue_timeout_s" in refused.value.message
    assert refused.value.retry_after_s is not None
    assert scheduler.queue_depth() == 0
    await endless.aclose()
    assert await text_of(scheduler, engine, "c") == "c!"
    assert scheduler.cancelled_jobs == 1  # the endless answer; "b" was refused, not cancelled


async def test_the_model_loading_does_not_count_as_waiting_for_a_slot(worker: ModelWorker) -> None:
    """The load takes longer than queue_timeout_s; once loaded, "b" waits only for "a"'s one
    step. (A 0.05 s timeout left that step 50 ms: a loaded machine may pause a thread as long.)"""
    engine = FakeEngine(parallel=1)
    scheduler = SlotScheduler(worker, parallel=1, queue_size=4, queue_timeout_s=0.5)

    def slow_load() -> FakeEngine:
        time.sleep(1.0)
        return engine.load()

    async def text(prompt: str) -> str:
        load: Any = slow_load
        return "".join([chunk.text async for chunk in scheduler.stream(request(prompt), load)])

    assert await asyncio.gather(text("a"), text("b")) == ["a!", "b!"]


async def test_the_other_answers_of_n_are_not_refused_once_one_has_had_a_slot(
    worker: ModelWorker,
) -> None:
    """The second of two answers through one slot waited behind another client's answer and
    was refused (429) when queue_timeout_s ran out: the whole request failed after its first
    answer was made, where it is refused at once or not at all."""
    engine = FakeEngine(parallel=1)
    engine.slots.gate.clear()  # the first answer holds the slot until the other client queues
    scheduler = SlotScheduler(worker, parallel=1, queue_size=1, queue_timeout_s=0.1)
    load: Any = engine.load
    asked = TextRequest(model="m", prompt="q", n=2)

    async def two_answers() -> list[str]:
        with scheduler.reserve(1) as places:
            opener = partial(scheduler.stream, engine=load, places=places)
            return [c.text async for c in fan_out(opener, asked, places.count) if c.text]

    answers = asyncio.ensure_future(two_answers())
    await asyncio.sleep(0.05)
    endless = scheduler.stream(request("endless"), load)
    other_client_reads = asyncio.ensure_future(anext(endless))
    await asyncio.sleep(0.05)
    engine.slots.gate.set()  # the first answer ends and the other client's takes the slot
    await other_client_reads
    await asyncio.sleep(0.3)  # the second answer waits longer than queue_timeout_s
    await endless.aclose()
    assert await asyncio.wait_for(answers, 10) == ["q!", "q!"]


async def test_n_answers_take_the_places_that_are_free_rather_than_a_429(
    worker: ModelWorker,
) -> None:
    """A request for two answers needed two free places at once: while requests for one
    answer took each place as it freed up, it was refused again and again (4 of 4 through the
    openai SDK's retries, beside 7 clients asking for one answer with one place left over).
    With one place free it is admitted as they are, and its answers take turns in it."""
    engine = FakeEngine(parallel=2)
    engine.slots.gate.clear()
    scheduler = SlotScheduler(worker, parallel=2, queue_size=1)
    load: Any = engine.load
    others = [asyncio.ensure_future(text_of(scheduler, engine, p)) for p in "ab"]
    await asyncio.sleep(0.05)  # both slots busy, the one place in the queue free
    asked = TextRequest(model="m", prompt="q", n=2)
    with scheduler.reserve(2) as places:
        assert places.count == 1
        opener = partial(scheduler.stream, engine=load, places=places)
        answers = fan_out(opener, asked, places.count)
        with pytest.raises(QueueFull):  # its place is taken: the next request is refused
            await text_of(scheduler, engine, "c")
        engine.slots.gate.set()
        assert [c.text async for c in answers if c.text] == ["q!", "q!"]
    assert await asyncio.gather(*others) == ["a!", "b!"]
