"""Any OpenAI-compatible endpoint (OpenAI, vLLM, llama-server, another smallfirst) over aiohttp.

aiohttp rather than httpx: measured on this machine, a bare proxy adds 0.62 ms per call with
aiohttp's client and 1.45 ms with httpx's (docs/benchmarks.md), and that hop is the
gateway's whole overhead budget. Retries with exponential backoff on 429, 5xx and connection
errors (waiting as long as an upstream's `Retry-After` asks, up to MAX_RETRY_WAIT_S), but only
before the first byte of an answer has reached our client: a stream that already started is
never replayed. How the answers are read is in `openai_wire.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import pydantic_core

from smallfirst.backends.base import Backend, info_from_config
from smallfirst.backends.connection_places import ConnectionPlaces
from smallfirst.backends.openai_wire import (
    UNREADABLE,
    AnswerTooLarge,
    StreamReader,
    completion_of,
    stream_payloads,
    told_error,
    upstream_error,
    whole_body,
)
from smallfirst.completions import Chunk, Completion, ModelInfo
from smallfirst.config import OpenAICompatModel
from smallfirst.errors import (
    InvalidRequest,
    SmallfirstError,
    UpstreamError,
    UpstreamQuotaSpent,
    UpstreamTimeout,
)
from smallfirst.surrogates import loads_replacing_surrogates
from smallfirst.types import ChatRequest, GenerateRequest
from smallfirst.usage_so_far import counting

RETRY_STATUSES = {429, 500, 502, 503, 504}
# Kinds of failed upstream calls (`/metrics`: smallfirst_upstream_errors_total{model,kind}).
TIMEOUT, CONNECT, BROKEN, MALFORMED = "timeout", "connect", "broken", "malformed"
RATE_LIMITED, QUOTA, CLIENT_ERROR, SERVER_ERROR = "rate_limited", "quota", "4xx", "5xx"
ERROR_EVENT = "error_event"  # an error object in place of an answer, or in a stream
TOO_LARGE = "too_large"  # an answer, or one event of a stream, over `max_answer_bytes`
# The longest `Retry-After` waited for before trying again: asked for longer, the error goes
# to the client at once (with the wait as its `retry-after`), not held for minutes.
MAX_RETRY_WAIT_S = 10.0
T = TypeVar("T")
# What makes a stream's usage exact; older Azure api-versions refuse it (then: estimated).
STREAM_OPTIONS = "stream_options"


@dataclass
class _Sending:
    """Whether a call's request may be at its upstream: from its POST on, but not while it
    waits for a connection or to be tried again. A call left before its upstream had it is
    neither billed nor logged as read (`UsageSoFar.only_waiting`), as a local model's call
    that left its queue."""

    at_upstream: bool = False

    @classmethod
    def counted(cls) -> _Sending:
        """A new call's, added to the gateway's count of it (`counting`) if there is one."""
        sending = cls()
        call = counting.get()
        if call is not None:
            call.add_sent(lambda: sending.at_upstream)
        return sending


class OpenAICompatBackend(Backend):
    answers_n_at_once = True  # `n` goes upstream: one call, the prompt billed once

    def __init__(self, config: OpenAICompatModel) -> None:
        self.config = config
        self._base_url = config.base_url.rstrip("/") + "/"
        self._headers = {"Content-Type": "application/json"}
        if config.api_key_env and os.environ.get(config.api_key_env):
            self._headers["Authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        self._session: aiohttp.ClientSession | None = None
        self._stream_options_refused = False
        self._places = ConnectionPlaces(config.id, config.max_concurrency, config.queue_timeout_s)
        self._reading: set[aiohttp.ClientResponse] = set()  # answers being read now
        self._ended_by: BaseException | None = None  # set at shutdown (`end_answers`)
        self._ending = asyncio.Event()  # set at shutdown too: wakes the calls waiting to retry
        self._closing: asyncio.Task[None] | None = None  # held: the loop keeps weak refs only
        self._errors: Counter[str] = Counter()  # failed calls by kind (`upstream_errors`)
        self._stopped_early = 0  # calls stopped before their answer ended (`_count_stopped`)

    def info(self) -> ModelInfo:
        return info_from_config(self.config, upstream=True)

    def queue_depth(self) -> int:
        return self._places.waiting()

    def upstream_errors(self) -> Mapping[str, int]:
        return dict(self._errors)

    def cancelled_generations(self) -> int:
        return self._stopped_early

    def _count_stopped(self) -> None:
        """Count a call stopped before its answer ended, under way or waiting for a
        connection: its client left, the gateway stopped it (another prompt of its batch
        failed), or the shutdown ended it. Closing its connection stops the upstream's
        answer, as a local model's slot stops, and a local model counts the same calls
        (`/metrics` said 0 for remote models however many streams their clients cut, and
        left out the calls the shutdown ended, which a local model counts)."""
        self._stopped_early += 1

    async def _counted_if_stopped(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError) or error is self._ended_by:
                self._count_stopped()
            raise

    def _failed(self, kind: str) -> None:
        """Count a failed call, unless the shutdown ended it."""
        if self._ended_by is None:
            self._errors[kind] += 1

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def end_answers(self, error: BaseException) -> None:
        """Answers being read end with `error` (their connections are closed), calls waiting
        for an upstream's first byte, for a connection or to be tried again too (the session is
        closed), and no call starts after."""
        self._ended_by = error
        self._ending.set()
        self._places.end_waits(error)
        for response in list(self._reading):
            response.close()
        self._closing = asyncio.get_running_loop().create_task(self.aclose())

    def _broke_off(self, answer: str, *, malformed: bool = False) -> BaseException:
        """An `answer` ("answer", "stream") that broke off after it began, or went on in a form
        that cannot be read (`malformed`), which the upstream bills (`received`); or the
        shutdown that closed its connection."""
        what = f"malformed upstream {answer}" if malformed else f"upstream {answer} broke off"
        return self._failed_after_it_began(what, MALFORMED if malformed else BROKEN)

    def _too_large(self, answer: str) -> BaseException:
        """An `answer` ("answer", "stream event") over `max_answer_bytes`, as one that broke
        off (its content is not quoted: it may be anything)."""
        limit, tier = self.config.max_answer_bytes, self.config.tier
        what = f"upstream {answer} exceeds the {tier} model's max_answer_bytes ({limit} bytes)"
        return self._failed_after_it_began(what, TOO_LARGE)

    def _failed_after_it_began(self, what: str, kind: str) -> BaseException:
        failed = UpstreamError(f"{self.config.id}: {what}")
        failed.received = True
        self._failed(kind)
        if self._ended_by is not None:  # its connection closed by the shutdown
            self._count_stopped()
            return self._ended_by
        return failed

    def _client(self) -> aiohttp.ClientSession:
        """The connection pool, made on first use: aiohttp binds it to the running loop."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self.config.max_concurrency),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.config.connect_timeout_s,
                    sock_read=self.config.read_timeout_s,
                ),
            )
        return self._session

    def _path_and_body(self, request: GenerateRequest, stream: bool) -> tuple[str, dict[str, Any]]:
        body = request.openai_body()
        body["model"] = self.config.remote_model or self.config.id
        body["stream"] = stream
        if stream and not self._stream_options_refused:
            body[STREAM_OPTIONS] = {"include_usage": True}
        else:
            body.pop(STREAM_OPTIONS, None)
        path = "chat/completions" if isinstance(request, ChatRequest) else "completions"
        return path, body

    async def _send(
        self, path: str, body: dict[str, Any], sending: _Sending
    ) -> aiohttp.ClientResponse:
        """POST with retries; returns a response with a 2xx status whose body is unread."""
        url = self._base_url + path
        data = pydantic_core.to_json(body)
        attempt = 0
        while True:
            if self._ended_by is not None:
                raise self._ended_by
            wait: float | None = None  # how long the upstream asked us to wait
            try:
                response = await self._post(url, data, sending)
            except TimeoutError as exc:
                timeout = UpstreamTimeout(f"{self.config.id}: upstream timed out")
                timeout.received = not isinstance(exc, aiohttp.ConnectionTimeoutError)
                self._failed(TIMEOUT if timeout.received else CONNECT)
                if timeout.received:
                    # It has the request and may still be answering (and billing) it: asked
                    # again, a slow upstream got twice the work (QA: 155 calls for 116).
                    raise timeout from exc
                error: SmallfirstError = timeout
                cause: Exception = exc
            except aiohttp.ClientError as exc:
                if self._ended_by is not None:  # the shutdown closed the session: no retry
                    raise self._ended_by from exc
                self._failed(CONNECT)
                error = UpstreamError(
                    f"{self.config.id}: cannot reach upstream ({type(exc).__name__})"
                )
                cause = exc
            else:
                self._reading.add(response)
                if response.status < 300:
                    return response
                try:
                    error, wait = await _status_error(
                        self.config.id, response, self.config.max_answer_bytes
                    )
                finally:
                    self._done_reading(response)
                self._failed(_status_kind(response.status, error))
                cause = RuntimeError(f"upstream answered {response.status}")
                if response.status not in RETRY_STATUSES or isinstance(error, UpstreamQuotaSpent):
                    raise error from cause
            if attempt >= self.config.max_retries or (wait or 0) > MAX_RETRY_WAIT_S:
                raise error from cause
            sending.at_upstream = False  # refused, or never reached: nothing there to bill
            await self._wait_to_retry(max(self.config.backoff_s * (2**attempt), wait or 0))
            attempt += 1

    async def _wait_to_retry(self, delay_s: float) -> None:
        """Wait `delay_s` before trying a call again, or until the shutdown, which ends the
        call at once (`_send`) rather than after a `Retry-After` of up to MAX_RETRY_WAIT_S."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ending.wait(), delay_s)

    async def _post(self, url: str, data: bytes, sending: _Sending) -> aiohttp.ClientResponse:
        """POST on one of the model's `max_concurrency` connections, whose place the response
        holds until `_done_reading`."""
        await self._places.take()
        sending.at_upstream = True
        try:
            return await self._client().post(url, data=data)
        except BaseException:
            self._places.give_back()
            raise

    async def _send_stream(
        self, path: str, body: dict[str, Any], sending: _Sending
    ) -> aiohttp.ClientResponse:
        """`_send`, once more without `stream_options` if the upstream refuses them (older
        Azure api-versions: "Unrecognized request argument supplied: stream_options"); this
        backend then leaves them out and estimates the usage of its streams."""
        try:
            return await self._send(path, body, sending)
        except InvalidRequest as error:
            if STREAM_OPTIONS not in body or not _names_stream_options(error):
                raise
        self._stream_options_refused = True
        del body[STREAM_OPTIONS]
        return await self._send(path, body, sending)

    async def complete(self, request: GenerateRequest) -> Completion:
        path, body = self._path_and_body(request, stream=False)
        body.pop("n", None)  # one answer: the gateway streams requests for more
        response = await self._counted_if_stopped(self._send(path, body, _Sending.counted()))
        try:
            raw = await self._counted_if_stopped(whole_body(response, self.config.max_answer_bytes))
        except TimeoutError as exc:
            self._failed(TIMEOUT)
            raise UpstreamTimeout(f"{self.config.id}: upstream timed out") from exc
        except aiohttp.ClientError as exc:
            raise self._broke_off("answer") from exc
        except AnswerTooLarge as exc:
            response.close()  # rather than read to its end
            raise self._too_large("answer") from exc
        finally:
            self._done_reading(response)
        try:
            return completion_of(loads_replacing_surrogates(raw), body, self.config.id)
        except UNREADABLE as exc:
            self._failed(MALFORMED)
            raise UpstreamError(f"{self.config.id}: malformed upstream answer") from exc
        except SmallfirstError as error:
            self._failed(_answer_error_kind(error))
            raise

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        path, body = self._path_and_body(request, stream=True)
        sending = _Sending.counted()
        response = await self._counted_if_stopped(self._send_stream(path, body, sending))
        reader = StreamReader(self.config.id, request.n)
        done = False
        try:
            async for payload in stream_payloads(response, self.config.max_answer_bytes):
                if payload == "[DONE]":
                    done = True
                    break
                for chunk in reader.chunks(payload):
                    yield chunk
        except TimeoutError as exc:
            if not reader.all_finished:
                self._failed(TIMEOUT)
                raise UpstreamTimeout(f"{self.config.id}: upstream timed out mid-stream") from exc
        # after every answer finished, what broke off was the usage (then: estimated)
        except aiohttp.ClientError as exc:
            if not reader.all_finished:
                raise self._broke_off("stream") from exc
        except UNREADABLE as exc:
            if not reader.all_finished:
                raise self._broke_off("stream", malformed=True) from exc
        except AnswerTooLarge as exc:
            response.close()  # rather than read to its end
            if not reader.all_finished:
                raise self._too_large("stream event") from exc
        except SmallfirstError as error:
            self._failed(_answer_error_kind(error))
            raise
        except (GeneratorExit, asyncio.CancelledError):  # closed early: by its client or us
            if not reader.all_finished:
                self._count_stopped()
            raise
        finally:
            self._done_reading(response)
        try:
            endings = reader.ending(body, done=done)
        except UpstreamError as error:
            self._failed(BROKEN)  # ended without finishing, or with answers missing
            error.received = reader.began  # as a stream that broke off after it began
            raise
        for chunk in endings:
            yield chunk

    def _done_reading(self, response: aiohttp.ClientResponse) -> None:
        if response in self._reading:
            self._reading.discard(response)
            self._places.give_back()
        response.release()


async def _status_error(
    model_id: str, response: aiohttp.ClientResponse, max_bytes: int
) -> tuple[SmallfirstError, float | None]:
    """The error an upstream answered, and how long it asked us to wait (passed on to the
    client as `retry-after`); its body, unread or over `max_bytes`, says nothing."""
    try:
        raw = await whole_body(response, max_bytes)
    except (TimeoutError, aiohttp.ClientError, AnswerTooLarge):
        response.close()
        raw = b""
    try:
        told, message = told_error(loads_replacing_surrogates(raw))
    except UNREADABLE:
        told, message = {}, raw[:200].decode(errors="replace")
    error = upstream_error(model_id, response.status, told, message)
    wait = _retry_after_s(response.headers)
    if wait is not None:
        error.retry_after_s = math.ceil(wait)
    return error, wait


def _status_kind(status: int, error: SmallfirstError) -> str:
    if isinstance(error, UpstreamQuotaSpent):
        return QUOTA
    if status == 429 or error.code == "upstream_rate_limited":
        return RATE_LIMITED
    return SERVER_ERROR if status >= 500 else CLIENT_ERROR


def _answer_error_kind(error: SmallfirstError) -> str:
    """An upstream's error object (its words, kept apart in `summary`), else an answer of a
    shape we cannot use (a choice it was not asked for)."""
    return ERROR_EVENT if error.summary is not None else MALFORMED


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """How long an upstream asks us to wait: `retry-after-ms` (OpenAI's), or `Retry-After` in
    seconds or as an HTTP date; None when it does not say (or says it unreadably)."""
    try:
        if "retry-after-ms" in headers:
            wait = float(headers["retry-after-ms"]) / 1000
            return max(wait, 0.0) if math.isfinite(wait) else None  # "inf", "1e999"
        value = headers.get("retry-after")
        if value is None:
            return None
        if value.strip().replace(".", "", 1).isdigit():
            return float(value) if math.isfinite(float(value)) else None
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # the HTTP date format is GMT
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _names_stream_options(error: InvalidRequest) -> bool:
    return error.param == STREAM_OPTIONS or STREAM_OPTIONS in error.message
