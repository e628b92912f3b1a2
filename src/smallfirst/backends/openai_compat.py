"""Any OpenAI-compatible endpoint (OpenAI, vLLM, llama-server, another smallfirst) over httpx.

Retries with exponential backoff on 429, 5xx and connection errors, but only before the first
byte of an answer has reached our client: a stream that already started is never replayed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx

from smallfirst.backends.base import Backend, info_from_config
from smallfirst.config import OpenAICompatModel
from smallfirst.errors import (
    InvalidRequest,
    QueueFull,
    SmallfirstError,
    UpstreamError,
    UpstreamTimeout,
)
from smallfirst.types import (
    ChatRequest,
    Chunk,
    Completion,
    GenerateRequest,
    ModelInfo,
    TokenLogprob,
    TopLogprob,
    Usage,
)

RETRY_STATUSES = {429, 500, 502, 503, 504}
CLIENT_ERROR_STATUSES = {400, 413, 422}


class OpenAICompatBackend(Backend):
    def __init__(
        self, config: OpenAICompatModel, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.config = config
        headers = {}
        if config.api_key_env and os.environ.get(config.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=config.max_concurrency),
            transport=transport,
        )

    def info(self) -> ModelInfo:
        return info_from_config(self.config)

    async def aclose(self) -> None:
        await self._client.aclose()

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

    async def _send(self, path: str, body: dict[str, Any], stream: bool) -> httpx.Response:
        """POST with retries; returns a response with a 2xx status (streamed if asked)."""
        attempt = 0
        while True:
            try:
                request = self._client.build_request("POST", path, json=body)
                response = await self._client.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                error: SmallfirstError = UpstreamTimeout(f"{self.config.id}: upstream timed out")
                cause: Exception = exc
            except httpx.TransportError as exc:
                error = UpstreamError(
                    f"{self.config.id}: cannot reach upstream ({type(exc).__name__})"
                )
                cause = exc
            else:
                if response.status_code < 300:
                    return response
                await response.aread()
                error = _status_error(self.config.id, response)
                cause = httpx.HTTPStatusError("upstream", request=request, response=response)
                if response.status_code not in RETRY_STATUSES:
                    raise error from cause
            if attempt >= self.config.max_retries:
                raise error from cause
            await asyncio.sleep(self.config.backoff_s * (2**attempt))
            attempt += 1

    async def complete(self, request: GenerateRequest) -> Completion:
        path, body = self._path_and_body(request, stream=False)
        response = await self._send(path, body, stream=False)
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamError(f"{self.config.id}: malformed upstream answer") from exc
        return Completion(
            text=text or "",
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            usage=_usage(data.get("usage"), body, text or ""),
            logprobs=_logprobs(choice.get("logprobs")),
        )

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        path, body = self._path_and_body(request, stream=True)
        response = await self._send(path, body, stream=True)
        finish: str | None = None
        usage: Usage | None = None
        emitted: list[str] = []
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                data = json.loads(payload)
                if data.get("usage"):
                    usage = Usage.model_validate(data["usage"])
                for choice in data.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text = delta.get("content") if "delta" in choice else choice.get("text")
                    logprobs = _logprobs(choice.get("logprobs"))
                    if text or logprobs:
                        emitted.append(text or "")
                        yield Chunk(text=text or "", logprobs=logprobs)
                    finish = choice.get("finish_reason") or finish
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{self.config.id}: upstream timed out mid-stream") from exc
        except (httpx.TransportError, json.JSONDecodeError) as exc:
            raise UpstreamError(f"{self.config.id}: upstream stream broke off") from exc
        finally:
            await response.aclose()
        if finish is None:
            raise UpstreamError(f"{self.config.id}: upstream stream ended without finishing")
        yield Chunk(
            finish_reason="length" if finish == "length" else "stop",
            usage=usage or _usage(None, body, "".join(emitted)),
        )


def _status_error(model_id: str, response: httpx.Response) -> SmallfirstError:
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    status = response.status_code
    if status in CLIENT_ERROR_STATUSES:
        return InvalidRequest(f"{model_id}: {message}")
    if status == 429:
        return QueueFull(
            f"{model_id}: upstream is rate limiting: {message}", code="upstream_rate_limited"
        )
    return UpstreamError(f"{model_id}: upstream answered {status}: {message}")


def _usage(raw: Any, body: dict[str, Any], text: str) -> Usage:
    """Upstream usage when given; otherwise a 4-characters-per-token estimate (documented)."""
    if isinstance(raw, dict) and "prompt_tokens" in raw:
        return Usage(
            prompt_tokens=raw["prompt_tokens"], completion_tokens=raw.get("completion_tokens", 0)
        )
    prompt_chars = len(json.dumps(body.get("messages") or body.get("prompt") or ""))
    return Usage(prompt_tokens=max(prompt_chars // 4, 1), completion_tokens=len(text) // 4)


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    """Chat (`content: [...]`) and legacy completion (`tokens`, `token_logprobs`) shapes."""
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("content"), list):
        return [
            TokenLogprob(
                token=item["token"],
                logprob=item["logprob"],
                top=[
                    TopLogprob(token=t["token"], logprob=t["logprob"])
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
                logprob=value if value is not None else 0.0,
                top=[TopLogprob(token=k, logprob=v) for k, v in (top or {}).items()],
            )
            for token, value, top in zip(tokens, values, tops, strict=False)
        ]
    return None
