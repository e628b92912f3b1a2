"""What a request carries through the gateway (`RequestContext`) and what comes out of it:
an answer, whole or streamed, with the route that says who answered and why."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from smallfirst.completions import Chunk, Completion, ModelInfo, Usage
from smallfirst.errors import SmallfirstError
from smallfirst.privacy_step import Inspection
from smallfirst.routing.budget import Hold
from smallfirst.usage_so_far import UsageSoFar

# Unique per process run without a urandom call per request (that costs ~0.1 ms on some VMs).
_ID_PREFIX, _ID_COUNTER = uuid.uuid4().hex[:12], itertools.count()
# With the count alone, one id told every other: whoever may call a server without API keys
# (any local user) read every stored conversation by counting down from their own. A keyed
# hash of the count (~1 us) makes the others unguessable.
_ID_TAG_KEY = secrets.token_bytes(16)


# The id of the request being served, for the log's lines (`server.log_format: json`). Each
# request runs in a task of its own, whose context holds it (`RequestContext.tag_log_lines`),
# and so does each prompt of a batch.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def new_request_id() -> str:
    count = next(_ID_COUNTER)
    tag = hashlib.blake2b(count.to_bytes(8, "big"), key=_ID_TAG_KEY, digest_size=8).hexdigest()
    return f"{_ID_PREFIX}{count:012x}{tag}"


@dataclass
class RequestContext:
    endpoint: str
    request_id: str = field(default_factory=new_request_id)
    api_key_id: str | None = None
    route_override: str | None = None
    started: float = field(default_factory=time.perf_counter)
    created_at: float = field(default_factory=time.time)
    requested_model: str | None = None  # what the client asked for, e.g. "rag/handbook"
    inspection: Inspection | None = None  # PII found in the request, and what was done
    # a private RAG collection an earlier turn of the conversation was grounded in (a stored
    # response's): its answers quote the documents, so the request stays on local tiers
    earlier_private_collection: str | None = None
    # the Responses API's truncation "auto": a conversation too long for every model that may
    # answer it loses its oldest turns (`truncation.py`)
    truncates: bool = False
    # the client's name for a field of the request as the gateway reads it, for errors that
    # name one: the Responses API's `max_output_tokens` for `max_completion_tokens`; by
    # default (`str`) the name itself
    client_name: Callable[[str], str] = field(default=str)
    spent_usd: float = 0.0  # every attempt's cost, the cascade's unused small answer included
    tried: list[str] = field(default_factory=list)  # models that failed or were escalated from
    calling: ModelInfo | None = None  # the model last asked to answer (it may have failed)
    holds: list[Hold] = field(default_factory=list)  # remote calls' estimates, until the end
    abandoned: Usage | None = None  # a remote call cancelled under way: what it is billed
    # each model's last call, its tokens counted as it went by a local engine (by model id)
    counted: dict[str, UsageSoFar] = field(default_factory=dict)
    # Set when the gateway stops the request for another's failure (a batch's prompt).
    stopped_by: SmallfirstError | None = None

    def tag_log_lines(self) -> None:
        """The log's lines written from now on in this task, and in the tasks it starts, carry
        this request's id. Not on creation: a batch makes its prompts' contexts in its own
        task, whose lines then carried the last prompt's id, as did the prompts' own."""
        current_request_id.set(self.request_id)

    def counted_usage(self, model: ModelInfo | None) -> Usage | None:
        """The tokens `model` read and wrote for the request, as a local engine counted them
        (its usage when the call ended before reporting it); None when nothing counted."""
        counted = self.counted.get(model.id) if model is not None else None
        return counted.usage() if counted is not None else None

    def only_queued(self, model: ModelInfo) -> bool:
        """Whether the request's last call to `model` never left its queue (a local model's),
        or was never sent (a remote one's, waiting for a connection or to be tried again)."""
        counted = self.counted.get(model.id)
        return counted is not None and counted.only_waiting()


@dataclass(frozen=True)
class RouteInfo:
    """Why this model answered: shown in headers, the response body and the request log."""

    model: ModelInfo
    router: str
    reason: str
    score: float | None = None
    threshold: float | None = None
    escalations: tuple[str, ...] = ()


@dataclass
class Answer:
    choices: list[Completion]  # `request.n` answers (one unless the client asked for more)
    usage: Usage  # of all of them: the prompt once, every answer's tokens
    route: RouteInfo
    citations: list[dict[str, Any]] | None = None  # None: not grounded; [] grounded in nothing

    @property
    def completion(self) -> Completion:
        """The first answer: all there is unless the client asked for `n` > 1."""
        return self.choices[0]


@dataclass
class StreamAnswer:
    route: RouteInfo
    chunks: AsyncIterator[Chunk]
    citations: list[dict[str, Any]] | None = None  # as Answer's
