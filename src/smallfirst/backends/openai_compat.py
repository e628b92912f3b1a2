"""Any OpenAI-compatible endpoint (OpenAI, vLLM, llama-server, another smallfirst) over aiohttp.

aiohttp rather than httpx: measured on this machine, a bare proxy adds 0.62 ms per call with
aiohttp's client and 1.45 ms with httpx's (docs/benchmarks.md), and that hop is the
gateway's whole overhead budget. Retries with exponential backoff on 429, 5xx and connection
errors, but only before the first byte of an answer has reached our client: a stream that
already started is never replayed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pydantic_core

from smallfirst.backends.base import Backend, info_from_config
from smallfirst.completions import (
    Chunk,
    Completion,
    ModelInfo,
    TokenLogprob,
    ToolCallDelta,
    TopLogprob,
    Usage,
    finish_reason_of,
)
from smallfirst.config import OpenAICompatModel
from smallfirst.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    QueueFull,
    SmallfirstError,
    UpstreamError,
    UpstreamTimeout,
)
from smallfirst.types import ChatRequest, FunctionCall, GenerateRequest, ToolCall

RETRY_STATUSES = {429, 500, 502, 503, 504}
CLIENT_ERROR_STATUSES = {400, 413, 422}


class OpenAICompatBackend(Backend):
    answers_n_at_once = True  # `n` goes upstream: one call, the prompt billed once

    def __init__(self, config: OpenAICompatModel) -> None:
        self.config = config
        self._base_url = config.base_url.rstrip("/") + "/"
        self._headers = {"Content-Type": "application/json"}
        if config.api_key_env and os.environ.get(config.api_key_env):
            self._headers["Authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        self._session: aiohttp.ClientSession | None = None

    def info(self) -> ModelInfo:
        return info_from_config(self.config)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
        if stream:
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream_options", None)
        path = "chat/completions" if isinstance(request, ChatRequest) else "completions"
        return path, body

    async def _send(self, path: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """POST with retries; returns a response with a 2xx status whose body is unread."""
        url = self._base_url + path
        data = pydantic_core.to_json(body)
        attempt = 0
        while True:
            try:
                response = await self._client().post(url, data=data)
            except TimeoutError as exc:
                error: SmallfirstError = UpstreamTimeout(f"{self.config.id}: upstream timed out")
                cause: Exception = exc
            except aiohttp.ClientError as exc:
                error = UpstreamError(
                    f"{self.config.id}: cannot reach upstream ({type(exc).__name__})"
                )
                cause = exc
            else:
                if response.status < 300:
                    return response
                error = await _status_error(self.config.id, response)
                cause = RuntimeError(f"upstream answered {response.status}")
                if response.status not in RETRY_STATUSES:
                    raise error from cause
            if attempt >= self.config.max_retries:
                raise error from cause
            await asyncio.sleep(self.config.backoff_s * (2**attempt))
            attempt += 1

    async def complete(self, request: GenerateRequest) -> Completion:
        path, body = self._path_and_body(request, stream=False)
        body.pop("n", None)  # one answer: the gateway streams requests for more
        response = await self._send(path, body)
        try:
            raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.config.id}: upstream timed out") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self.config.id}: upstream answer broke off") from exc
        finally:
            response.release()
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"].get("content") if "message" in choice else choice["text"]
            tool_calls = _tool_calls((choice.get("message") or {}).get("tool_calls"))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamError(f"{self.config.id}: malformed upstream answer") from exc
        written = (text or "") + "".join(c.function.arguments for c in tool_calls or [])
        return Completion(
            text=text or "",
            finish_reason=finish_reason_of(choice.get("finish_reason")),
            usage=_usage(data.get("usage"), body, written),
            logprobs=_logprobs(choice.get("logprobs")),
            tool_calls=tool_calls,
        )

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        path, body = self._path_and_body(request, stream=True)
        response = await self._send(path, body)
        finishes: dict[int, str] = {}
        usage: Usage | None = None
        emitted: list[str] = []
        try:
            async for payload in _sse_payloads(response):
                if payload == "[DONE]":
                    break
                data = json.loads(payload)
                if data.get("usage"):
                    usage = Usage.model_validate(data["usage"])
                for choice in data.get("choices") or []:
                    index = self._choice_index(choice, request.n)
                    delta = choice.get("delta") or {}
                    text = delta.get("content") if "delta" in choice else choice.get("text")
                    logprobs = _logprobs(choice.get("logprobs"))
                    calls = _tool_call_deltas(delta.get("tool_calls"))
                    if text or logprobs or calls:
                        emitted.append((text or "") + "".join(c.arguments for c in calls or []))
                        yield Chunk(
                            index=index, text=text or "", logprobs=logprobs, tool_calls=calls
                        )
                    if choice.get("finish_reason"):
                        finishes[index] = choice["finish_reason"]
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.config.id}: upstream timed out mid-stream") from exc
        except (aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{self.config.id}: upstream stream broke off") from exc
        finally:
            response.release()
        if len(finishes) < request.n:
            raise UpstreamError(f"{self.config.id}: upstream stream ended without finishing")
        usage = usage or _usage(None, body, "".join(emitted))
        for index in range(request.n):  # the last one carries the usage of all
            yield Chunk(
                index=index,
                finish_reason=finish_reason_of(finishes[index]),
                usage=usage if index == request.n - 1 else None,
            )

    def _choice_index(self, choice: dict[str, Any], n: int) -> int:
        index = choice.get("index", 0)
        if not isinstance(index, int) or not 0 <= index < n:
            raise UpstreamError(f"{self.config.id}: upstream sent choice {index!r} of {n}")
        return index


async def _sse_payloads(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent event stream, however the bytes were chunked.
    Lines are split here rather than with aiohttp's readline, which caps a line at 64 KiB
    (a chunk with many top_logprobs can be longer)."""
    pending = b""
    async for block in response.content.iter_any():
        pending += block
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip().decode()
    if pending.startswith(b"data:"):
        yield pending[5:].strip().decode()


async def _status_error(model_id: str, response: aiohttp.ClientResponse) -> SmallfirstError:
    try:
        raw = await response.read()
    except (TimeoutError, aiohttp.ClientError):
        raw = b""
    finally:
        response.release()
    try:
        told = json.loads(raw)["error"]
        message = str(told["message"])
    except (ValueError, KeyError, TypeError):
        told, message = {}, raw[:200].decode(errors="replace")
    status = response.status
    if status in CLIENT_ERROR_STATUSES:  # its code and param say what to change, as sent
        code, param = _code_and_param(told)
        kind = ContextLengthExceeded if code == ContextLengthExceeded.code else InvalidRequest
        return kind(f"{model_id}: {message}", param=param, code=code)
    if status == 429:
        return QueueFull(
            f"{model_id}: upstream is rate limiting: {message}", code="upstream_rate_limited"
        )
    return UpstreamError(f"{model_id}: upstream answered {status}: {message}")


def _code_and_param(error: Any) -> tuple[str | None, str | None]:
    """An upstream error's code and param, where it gives them as text."""
    if not isinstance(error, dict):
        return None, None
    code, param = error.get("code"), error.get("param")
    return (
        code if isinstance(code, str) else None,
        param if isinstance(param, str) else None,
    )


def _usage(raw: Any, body: dict[str, Any], text: str) -> Usage:
    """Upstream usage when given; otherwise a 4-characters-per-token estimate (documented)."""
    if isinstance(raw, dict) and "prompt_tokens" in raw:
        return Usage.model_validate(raw)
    prompt_chars = len(json.dumps(body.get("messages") or body.get("prompt") or ""))
    return Usage(prompt_tokens=max(prompt_chars // 4, 1), completion_tokens=len(text) // 4)


def _tool_calls(raw: Any) -> list[ToolCall] | None:
    """`message.tool_calls`, read for the fields OpenAI defines: servers add their own (an
    `index`, say), and some send the arguments as an object rather than JSON text."""
    if not raw:
        return None
    calls = []
    for number, item in enumerate(raw):
        function = item["function"]
        arguments = function.get("arguments")
        if arguments is None:  # some servers' way to say "no arguments"; "" is a call cut off
            arguments = "{}"
        calls.append(
            ToolCall(
                id=item.get("id") or f"call_{number}",
                function=FunctionCall(
                    name=function["name"],
                    arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
                ),
            )
        )
    return calls


def _tool_call_deltas(raw: Any) -> list[ToolCallDelta] | None:
    """Streamed `delta.tool_calls`: `{index, id?, type?, function: {name?, arguments?}}`."""
    if not raw:
        return None
    return [
        ToolCallDelta(
            index=item.get("index", 0),
            id=item.get("id"),
            name=(item.get("function") or {}).get("name"),
            arguments=(item.get("function") or {}).get("arguments") or "",
        )
        for item in raw
    ]


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    """Chat (`content: [...]`) and legacy completion (`tokens`, `token_logprobs`) shapes."""
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("content"), list):
        return [
            TokenLogprob(
                token=item["token"],
                logprob=item["logprob"],
                utf8=item.get("bytes"),
                top=[
                    TopLogprob(token=t["token"], logprob=t["logprob"], utf8=t.get("bytes"))
                    for t in item.get("top_logprobs") or []
                ],
            )
            for item in raw["content"]
        ]
    tokens, values = raw.get("tokens"), raw.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(values, list):
        tops = raw.get("top_logprobs") or [None] * len(tokens)
        return [
            TokenLogprob(
                token=token,
                logprob=value,
                top=[TopLogprob(token=k, logprob=v) for k, v in (top or {}).items()],
            )
            for token, value, top in zip(tokens, values, tops, strict=False)
        ]
    return None
