"""`POST /v1/embeddings`: the local sentence encoder (`smallfirst.embed`), as OpenAI's
endpoint has it. Logged like the other endpoints, so its answers and errors carry
`x-request-id`."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Literal

from pydantic import Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smallfirst import embed
from smallfirst.api_model import ApiModel, FieldError
from smallfirst.config import EMBEDDING_MODEL_IDS
from smallfirst.errors import (
    ClientLeft,
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    SmallfirstError,
)
from smallfirst.server.auth import api_key_of
from smallfirst.server.errors import REQUEST_ID_HEADER
from smallfirst.server.responses import json_bytes
from smallfirst.server.routes import (
    gateway,
    read_body,
    read_or_log_rejection,
    unless_client_leaves,
    validated,
)

MAX_EMBEDDING_INPUTS = 2048
JSON = "application/json"


class EmbeddingRequest(ApiModel):
    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        """At least one text. OpenAI also takes token ids of its own tokenizer; they mean
        nothing to this model."""
        if value == "" or value == []:  # pydantic's words ("at least 1 item") do not say so
            raise ValueError("the input must not be empty: send a text or a list of texts")
        if isinstance(value, list) and value and _token_arrays(value):
            raise ValueError(
                "token arrays are not supported: send the text (LangChain's OpenAIEmbeddings: "
                "check_embedding_ctx_length=False)"
            )
        if isinstance(value, list) and "" in value:
            raise FieldError(str(value.index("")), "an empty text has no embedding")
        if isinstance(value, list) and len(value) > MAX_EMBEDDING_INPUTS:  # OpenAI's limit too
            raise ValueError(
                f"at most {MAX_EMBEDDING_INPUTS} inputs per request; got {len(value)}: "
                "send them in batches"
            )
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def _token_arrays(items: list[Any]) -> bool:
    """Whether `items` are token ids, or lists of them (OpenAI's other forms of `input`);
    anything else that is no text gets the type error naming the item (`input.0`)."""

    def token_ids(item: Any) -> bool:
        return isinstance(item, list) and all(type(t) is int for t in item)  # bools are no ids

    return token_ids(items) or all(map(token_ids, items))


async def embeddings(request: Request) -> Response:
    """Logged like the other endpoints, so its answers and errors carry `x-request-id`."""
    gw, started = gateway(request), time.perf_counter()
    api_key_id = api_key_of(request)
    parsed = await read_or_log_rejection(
        request, "embeddings", partial(read_body, _embedding_request)
    )
    try:
        answer = await unless_client_leaves(request, _embedded(parsed))
        if answer is None:
            raise ClientLeft("the client left before its embeddings were done")
    except SmallfirstError as error:
        error.request_id = gw.ledger.record_embeddings(
            parsed.model, api_key_id, started, error=error
        )
        raise
    request_id = gw.ledger.record_embeddings(
        embed.MODEL_ID, api_key_id, started, tokens=answer.tokens
    )
    return Response(answer.body, media_type=JSON, headers={REQUEST_ID_HEADER: request_id})


def _embedding_request(body: bytes) -> EmbeddingRequest:
    parsed = validated(EmbeddingRequest, body)
    if parsed.model not in EMBEDDING_MODEL_IDS:  # the model's id and an alias
        raise ModelNotFound(
            f"The embedding model `{parsed.model}` does not exist; use `{embed.MODEL_ID}`",
            param="model",
        )
    return parsed


@dataclass(frozen=True)
class _Answer:
    body: bytes  # rendered as JSON
    tokens: int  # the inputs had


async def _embedded(parsed: EmbeddingRequest) -> _Answer:
    if parsed.dimensions not in (None, embed.DIMENSIONS):  # not a Matryoshka model: no cutting
        raise InvalidRequest(
            f"`{embed.MODEL_ID}` makes {embed.DIMENSIONS}-dimensional vectors only",
            param="dimensions",
        )
    stop = threading.Event()
    try:
        return await asyncio.get_running_loop().run_in_executor(
            _encoder_thread(), partial(_answer, parsed, stop)
        )
    except ContextLengthExceeded as too_long:
        if isinstance(parsed.input, str):  # a lone text, not item 0 of a list
            too_long.param = "input"
        raise
    finally:
        stop.set()  # cancelled (its client left): the thread ends at its next text


def _answer(parsed: EmbeddingRequest, stop: threading.Event) -> _Answer:
    """The embeddings, and the answer that holds them rendered, on the encoder's thread: the
    answer of 2,048 texts took ~0.2 s to build and serialise, which on the event loop every
    other request waited for."""
    vectors, tokens = embed.get_embedder().embed_counted(parsed.texts, stop=stop)
    data: list[dict[str, Any]] = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encode(v.tolist(), parsed.encoding_format),
        }
        for i, v in enumerate(vectors)
    ]
    body = {
        "object": "list",
        "data": data,
        "model": embed.MODEL_ID,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return _Answer(json_bytes(body), tokens)


@cache
def _encoder_thread() -> ThreadPoolExecutor:
    """Embedding requests take turns on a thread of their own. In asyncio's default pool (six
    threads on two cores) six large ones took every thread, and chat requests, whose privacy
    scan and routing run there, waited for them all (QA: 0.3 s alone, 15-29 s behind them).
    Made on first use; its idle thread ends with the process."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="embeddings")


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    import base64
    import struct

    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


EMBEDDINGS_ROUTES = [Route("/v1/embeddings", embeddings, methods=["POST"])]
