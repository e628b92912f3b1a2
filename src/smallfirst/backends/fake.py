"""A backend that replays queued answers: drives hermetic tests and the overhead benchmark."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from smallfirst.backends.base import Backend, info_from_config
from smallfirst.config import FakeModel
from smallfirst.types import (
    ChatRequest,
    Chunk,
    Completion,
    GenerateRequest,
    ModelInfo,
    TokenLogprob,
    Usage,
)


@dataclass(frozen=True)
class FakeReply:
    text: str
    logprob: float = -0.05  # per token; a cascade test sets it low to look unsure


class FakeBackend(Backend):
    def __init__(self, config: FakeModel) -> None:
        self.config = config
        self._queued: deque[FakeReply | BaseException] = deque()
        self._turn = 0
        self.requests: list[GenerateRequest] = []
        self.closed_early = 0  # streams abandoned by their consumer

    def queue(self, *replies: str | FakeReply | BaseException) -> None:
        for reply in replies:
            self._queued.append(FakeReply(reply) if isinstance(reply, str) else reply)

    def info(self) -> ModelInfo:
        return info_from_config(self.config)

    def _next(self, request: GenerateRequest) -> FakeReply:
        self.requests.append(request)
        if self._queued:
            item = self._queued.popleft()
            if isinstance(item, BaseException):
                raise item
            return item
        reply = self.config.replies[self._turn % len(self.config.replies)]
        self._turn += 1
        return FakeReply(reply)

    async def complete(self, request: GenerateRequest) -> Completion:
        reply = self._next(request)
        pieces = _pieces(reply.text)
        if self.config.token_delay_s:
            await asyncio.sleep(self.config.token_delay_s * len(pieces))
        return Completion(
            text=reply.text,
            usage=_usage(request, pieces),
            logprobs=_logprobs(pieces, reply) if request.logprob_alternatives is not None else None,
        )

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        reply = self._next(request)
        pieces = _pieces(reply.text)
        finished = False
        try:
            for piece in pieces:
                if self.config.token_delay_s:
                    await asyncio.sleep(self.config.token_delay_s)
                logprobs = (
                    _logprobs([piece], reply) if request.logprob_alternatives is not None else None
                )
                yield Chunk(text=piece, logprobs=logprobs)
            finished = True
            yield Chunk(finish_reason="stop", usage=_usage(request, pieces))
        finally:
            if not finished:
                self.closed_early += 1


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []


def _usage(request: GenerateRequest, pieces: list[str]) -> Usage:
    if isinstance(request, ChatRequest):
        prompt = sum(len(m.text.split()) + 4 for m in request.messages)
    else:
        prompt = len(request.prompt_text.split())
    return Usage(prompt_tokens=prompt, completion_tokens=len(pieces))


def _logprobs(pieces: list[str], reply: FakeReply) -> list[TokenLogprob]:
    return [TokenLogprob(token=p, logprob=reply.logprob) for p in pieces]
