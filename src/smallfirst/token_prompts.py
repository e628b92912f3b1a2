"""Prompts given as token ids (`/v1/completions`, as evaluation harnesses send them): read
with the named model's own tokenizer before anything else looks at the request, so that the
privacy guard, the log and `echo` see their text while the model reads the ids as sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, nullcontext

from smallfirst.backends import Backend
from smallfirst.backends.base import Tokenizer
from smallfirst.config import EMBEDDING_MODEL_IDS
from smallfirst.errors import InvalidRequest, ModelNotFound
from smallfirst.rag_step import rag_collection
from smallfirst.routing_step import AUTO_MODEL
from smallfirst.types import GenerateRequest, TextRequest


async def read_token_prompt(
    request: GenerateRequest, backends: Mapping[str, Backend]
) -> GenerateRequest:
    """The request with its token-id prompt read (other requests as they are)."""
    if not isinstance(request, TextRequest) or not request.prompt_needs_reading:
        return request
    async with tokenizer_for(request.model, backends, param="prompt") as tokenizer:
        try:
            text = await asyncio.to_thread(tokenizer.decode, request.prompt_tokens or [])
        except InvalidRequest as error:
            error.param = "prompt"
            raise
    return request.with_prompt_read(text)


@asynccontextmanager
async def tokenizer_for(
    model_id: str, backends: Mapping[str, Backend], *, param: str
) -> AsyncIterator[Tokenizer]:
    """The tokenizer of a model asked for by id, within the block. Token ids mean something
    in one vocabulary, so `auto` and `rag/` will not do, and a remote model's tokenizer is
    not here."""
    backend = backends.get(model_id)
    listed = model_id in (AUTO_MODEL, *EMBEDDING_MODEL_IDS) or rag_collection(model_id) is not None
    if backend is None and not listed:
        raise ModelNotFound.named(model_id)
    async with backend.tokenizer() if backend is not None else nullcontext() as tokenizer:
        if tokenizer is None:
            raise InvalidRequest(
                "token ids, read or written, need a local model asked for by id (they mean"
                f" something in one model's vocabulary); `{model_id}` is not one",
                param=param,
            )
        yield tokenizer
