"""vLLM's tokenizer endpoints, with which evaluation harnesses count and score in a model's
own token ids (lm-evaluation-harness's `local-completions` looks for them by itself):
`POST /tokenize`, `POST /detokenize` and `GET /tokenizer_info`. Each takes an optional
`model` (default: the default model); local models only, since a remote model's tokenizer is
not here. Text is tokenized as `/v1/completions` reads a text prompt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smallfirst.api_model import ApiModel
from smallfirst.backends.base import Tokenizer
from smallfirst.server.routes import gateway, parse
from smallfirst.token_prompts import tokenizer_for


class TokenizeRequest(ApiModel):
    model: str | None = Field(default=None, min_length=1)
    prompt: str
    add_special_tokens: bool = True  # the model's BOS, where it has one
    return_token_strs: bool = False


class DetokenizeRequest(ApiModel):
    model: str | None = Field(default=None, min_length=1)
    tokens: list[Annotated[int, Field(ge=0, strict=True)]]  # `true` is no token id


@asynccontextmanager
async def _tokenizer(
    request: Request, model_id: str | None
) -> AsyncIterator[tuple[str, Tokenizer]]:
    gw = gateway(request)
    model_id = model_id or gw.default_model_id()
    async with tokenizer_for(model_id, gw.backends, param="model") as tokenizer:
        yield model_id, tokenizer


def _context_length(request: Request, model_id: str) -> int:
    return gateway(request).backends[model_id].info().context_length


async def tokenize(request: Request) -> Response:
    parsed = await parse(request, TokenizeRequest)
    async with _tokenizer(request, parsed.model) as (model_id, tokenizer):

        def read() -> tuple[list[int], list[str] | None]:
            tokens = tokenizer.encode(parsed.prompt, add_special_tokens=parsed.add_special_tokens)
            strings = [tokenizer.decode([t]) for t in tokens] if parsed.return_token_strs else None
            return tokens, strings

        # Off the event loop: a prompt of megabytes takes seconds, and every request waited.
        tokens, strings = await asyncio.to_thread(read)
    return JSONResponse(
        {
            "count": len(tokens),
            "max_model_len": _context_length(request, model_id),
            "tokens": tokens,
            "token_strs": strings,
        }
    )


async def detokenize(request: Request) -> Response:
    parsed = await parse(request, DetokenizeRequest)
    async with _tokenizer(request, parsed.model) as (_, tokenizer):
        text = await asyncio.to_thread(tokenizer.decode, parsed.tokens)
    return JSONResponse({"prompt": text})


async def tokenizer_info(request: Request) -> Response:
    async with _tokenizer(request, request.query_params.get("model")) as (model_id, tokenizer):
        info = {**tokenizer.info(), "vocab_size": tokenizer.vocab_size}
    return JSONResponse(
        {"model": model_id, **info, "model_max_length": _context_length(request, model_id)}
    )


TOKENIZER_ROUTES = [
    Route("/tokenize", tokenize, methods=["POST"]),
    Route("/detokenize", detokenize, methods=["POST"]),
    Route("/tokenizer_info", tokenizer_info, methods=["GET"]),
]
