"""HTTP handlers: parse and validate at the edge, call the service, render. Nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from smallfirst.answers import Answer, RequestContext, RouteInfo, StreamAnswer
from smallfirst.config import EMBEDDING_MODEL_IDS
from smallfirst.errors import (
    CLIENT_CLOSED_REQUEST,
    ClientLeft,
    InvalidRequest,
    ModelNotFound,
    SmallfirstError,
    UnsupportedEncoding,
    served,
)
from smallfirst.request_records import UNKNOWN_MODEL
from smallfirst.routing_step import AUTO_MODEL
from smallfirst.server.auth import api_key_of
from smallfirst.server.dashboard import dashboard
from smallfirst.server.errors import (
    REQUEST_ID_HEADER,
    UTF8_BOM,
    lone_surrogate_error,
    validation_error,
)
from smallfirst.server.render import (
    ChunkRenderer,
    batch_body,
    batch_stream,
    completion_body,
    route_headers,
)
from smallfirst.server.responses import JSONResponse
from smallfirst.server.responses_api_render import ResponseEvents, response_body
from smallfirst.server.responses_api_request import ResponsesRequest, responses_param
from smallfirst.server.responses_api_stored import (
    Keeping,
    delete_response,
    keeping_for,
    response_part,
    response_store,
    retrieve_response,
)
from smallfirst.server.sse import sse_stream
from smallfirst.service import Gateway
from smallfirst.streams import close_stream
from smallfirst.surrogates import loads_replacing_surrogates
from smallfirst.types import ChatRequest, GenerateRequest, TextRequest

RequestModel = TypeVar("RequestModel", bound=BaseModel)
T = TypeVar("T")
ROUTE_HEADER = "x-smallfirst-route"
WATCH_AFTER_S = 0.1  # a request still running after this is watched for its client leaving
# A larger body is read (parsed and validated) in a thread: 3 MB of small messages take ~0.6 s
# to validate (a Responses `input` ~1.1 s), and on the event loop every other request waited.
READ_IN_THREAD_BYTES = 64_000
NOT_CACHED = {"cache-control": "no-cache"}


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def parse(request: Request, model: type[RequestModel]) -> RequestModel:
    return await read_body(partial(validated, model), await body_of(request))


async def read_body(read: Callable[[bytes], T], body: bytes) -> T:
    """`read(body)`, in a thread for a large body (below the size, the hop costs more)."""
    if len(body) < READ_IN_THREAD_BYTES:
        return read(body)
    return await asyncio.to_thread(read, body)


async def body_of(request: Request) -> bytes:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", ""):  # else gzip bytes read as "not JSON"
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding} is not supported: send the body uncompressed."
        )
    try:
        return await request.body()
    except ClientDisconnect:  # left while sending it: logged as 499, like leaving later
        raise ClientLeft("The client closed the connection while sending its request.") from None


async def read_or_log_rejection(
    request: Request, endpoint: str, read: Callable[[bytes], Awaitable[T]]
) -> T:
    """`read(body)`. A body refused (unreadable, invalid, an unknown model) is logged and
    counted too, so error rates are complete, under the model it named; its error carries
    the row's id."""
    body = b""
    try:
        body = await body_of(request)
        return await read(body)
    except SmallfirstError as error:
        asked = await read_body(model_named_in, body)
        ledger = gateway(request).ledger
        error.request_id = ledger.record_rejection(endpoint, error, api_key_of(request), asked)
        raise


def model_named_in(body: bytes) -> str:
    """The model a refused body asks for, for its log row ("unknown" if it names none): the
    operator looking for a client's 400s finds them under the model it asked for."""
    # Python's parser: it reads a lone surrogate's escape, which pydantic's refuses (made
    # U+FFFD: UTF-8 cannot hold it, and the request log's writer died on its row)
    try:
        named = loads_replacing_surrogates(body.removeprefix(UTF8_BOM)).get("model")
    except (ValueError, RecursionError, AttributeError):  # not JSON, too deep, not an object
        return UNKNOWN_MODEL
    return named if isinstance(named, str) and named else UNKNOWN_MODEL


def validated(model: type[RequestModel], body: bytes) -> RequestModel:
    body = body.removeprefix(UTF8_BOM)  # RFC 8259 lets a parser ignore it; editors write one
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        raise (lone_surrogate_error(exc, body) or validation_error(exc)) from None
    if b"NaN" in body or b"Infinity" in body:
        _refuse_non_finite(body)
    return parsed


def _refuse_non_finite(body: bytes) -> None:
    """NaN and Infinity are not JSON (OpenAI's parser refuses them), yet pydantic reads them
    where a field takes any JSON (a tool's `parameters`): refused there too."""
    try:
        pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request: NaN and Infinity are not JSON"
            f" numbers ({exc})."
        ) from None


class _Dialect(Protocol):
    """One OpenAI API over the same gateway: the request as the gateway takes it, and how
    answers are rendered, whole and streamed."""

    request: GenerateRequest

    @property
    def earlier_private_collection(self) -> str | None:
        """A private RAG collection the conversation was grounded in before the request."""
        ...

    @property
    def truncates(self) -> bool:
        """Whether a conversation too long for its model loses its oldest turns."""
        ...

    def body(self, answer: Answer, request_id: str) -> dict[str, Any]: ...

    def stream(self, answer: StreamAnswer, request_id: str) -> AsyncIterator[bytes]: ...

    async def finish(self, body: dict[str, Any], request_id: str) -> None:
        """After a whole answer is rendered, before it is sent."""

    def param(self, name: str) -> str:
        """An error's `param` (named for `request`) as this API's body names it."""
        ...


@dataclass
class _Completions:
    """/v1/chat/completions and /v1/completions."""

    request: GenerateRequest
    earlier_private_collection: str | None = None  # the client sends the whole conversation
    truncates: bool = False  # a Responses API option

    def body(self, answer: Answer, request_id: str) -> dict[str, Any]:
        return completion_body(
            self.request, answer.choices, answer.usage, answer.route, request_id, answer.citations
        )

    def stream(self, answer: StreamAnswer, request_id: str) -> AsyncIterator[bytes]:
        renderer = ChunkRenderer(self.request, answer.route, request_id, answer.citations)
        return sse_stream(renderer, answer.chunks)

    async def finish(self, body: dict[str, Any], request_id: str) -> None:
        pass

    def param(self, name: str) -> str:
        return name


@dataclass
class _Responses:
    """/v1/responses, answered as the chat request it amounts to (after the stored
    conversation it goes on from), and stored once answered unless `store: false`."""

    asked: ResponsesRequest
    request: GenerateRequest
    keeping: Keeping

    @property
    def earlier_private_collection(self) -> str | None:
        return self.keeping.earlier_private_collection

    @property
    def truncates(self) -> bool:
        return self.asked.truncation == "auto"

    def body(self, answer: Answer, request_id: str) -> dict[str, Any]:
        return response_body(
            self.asked,
            answer.completion,
            answer.route,
            request_id,
            answer.citations,
            stored=self.keeping.store is not None,
        )

    def stream(self, answer: StreamAnswer, request_id: str) -> AsyncIterator[bytes]:
        stored = self.keeping.store is not None
        events = ResponseEvents(
            self.asked, answer.route, request_id, answer.citations, stored=stored
        )
        kept = False

        async def keep_the_finished() -> None:
            nonlocal kept
            if events.finished is not None and not kept:
                kept = True
                await self.keeping.keep(self.asked, events.finished, request_id)

        return sse_stream(events, answer.chunks, keep_the_finished if stored else None)

    async def finish(self, body: dict[str, Any], request_id: str) -> None:
        await self.keeping.keep(self.asked, body, request_id)

    def param(self, name: str) -> str:
        return responses_param(name)


def _reader(read: Callable[[bytes], _Dialect]) -> Callable[[Request, bytes], Awaitable[_Dialect]]:
    """A dialect read from the body alone (in a thread when it is large)."""

    async def read_request(_: Request, body: bytes) -> _Dialect:
        return await read_body(read, body)

    return read_request


async def _read_responses(request: Request, body: bytes) -> _Responses:
    asked = await read_body(partial(validated, ResponsesRequest), body)
    keeping = await keeping_for(asked, response_store(request), api_key_of(request))
    if keeping.earlier:  # a stored conversation may be long: converted off the event loop
        chat = await asyncio.to_thread(asked.to_chat_request, keeping.earlier)
    else:
        chat = await read_body(lambda _: asked.to_chat_request(), body)
    keeping.private_collection = gateway(request).private_collection(chat)
    return _Responses(asked, chat, keeping)


async def _generate(
    request: Request, endpoint: str, read: Callable[[Request, bytes], Awaitable[_Dialect]]
) -> Response:
    """Every answer and every error carries `x-request-id`: the request log's id for it."""
    gw = gateway(request)
    dialect = await read_or_log_rejection(request, endpoint, partial(read, request))
    parsed = dialect.request
    ctx = RequestContext(
        endpoint=endpoint,
        api_key_id=api_key_of(request),
        route_override=request.headers.get(ROUTE_HEADER) or parsed.route,
        earlier_private_collection=dialect.earlier_private_collection,
        truncates=dialect.truncates,
        client_name=dialect.param,
    )
    ctx.tag_log_lines()
    try:
        return await _answer(request, gw, ctx, dialect)
    except SmallfirstError as error:
        error.request_id = ctx.request_id
        if error.param is not None:
            error.param = dialect.param(error.param)
        raise


async def _answer(
    request: Request, gw: Gateway, ctx: RequestContext, dialect: _Dialect
) -> Response:
    parsed = dialect.request
    if isinstance(parsed, TextRequest) and len(parsed.prompts) > 1:
        answers = await unless_client_leaves(request, gw.complete_each_prompt(parsed, ctx))
        if answers is None:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        headers = _headers(answers[0].route, ctx)
        if parsed.stream:
            return StreamingResponse(
                batch_stream(parsed, answers, ctx.request_id),
                media_type="text/event-stream",
                headers={**headers, **NOT_CACHED},
            )
        return JSONResponse(batch_body(parsed, answers, ctx.request_id), headers=headers)
    if parsed.stream:
        answer = await unless_client_leaves(request, gw.stream(parsed, ctx))
        if answer is None:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        return StreamingResponse(
            _failing_closes(dialect.stream(answer, ctx.request_id), answer, ctx),
            media_type="text/event-stream",
            headers={**_headers(answer.route, ctx), **NOT_CACHED},
            # after the response, however it ended: a client that left before the body was
            # read left the answer open, unlogged, its budget hold kept
            background=BackgroundTask(close_stream, answer.chunks),
        )
    result = await unless_client_leaves(request, gw.complete(parsed, ctx))
    if result is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    body = dialect.body(result, ctx.request_id)
    await dialect.finish(body, ctx.request_id)
    return JSONResponse(body, headers=_headers(result.route, ctx))


async def _failing_closes(
    body: AsyncIterator[bytes], answer: StreamAnswer, ctx: RequestContext
) -> AsyncIterator[bytes]:
    """`body`; if rendering it fails, the answer is closed at once and logged as failed by
    the gateway (StreamingResponse runs its background task only after a body that ended
    well: the answer stayed open, its model writing for nobody, its budget hold kept and its
    row unwritten until the generator was collected, if ever)."""
    try:
        async for piece in body:
            yield piece
    except Exception as error:
        ctx.stopped_by = served(error)
        await close_stream(answer.chunks)
        raise


def _headers(route: RouteInfo, ctx: RequestContext) -> dict[str, str]:
    return {**route_headers(route), REQUEST_ID_HEADER: ctx.request_id}


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """Await `work`, or return None if the client disconnects first: `work` is then cancelled,
    so a model stops generating an answer nobody will read. (Once a stream has begun,
    StreamingResponse watches for the disconnect itself.) The watch starts only after
    WATCH_AFTER_S: most requests are over by then, and a watcher task costs ~10 us each."""
    handler = asyncio.current_task()
    assert handler is not None
    watcher: asyncio.Task[None] | None = None

    def watch() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(_cancel_on_disconnect(request, handler))

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, watch)
    try:
        return await work
    except asyncio.CancelledError:
        if watcher is None or not watcher.done() or watcher.cancelled():
            raise  # cancelled by someone else: the server is shutting down
        if handler.uncancel():  # by someone else too, in the same turn: that one stands
            raise
        return None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def _cancel_on_disconnect(request: Request, handler: asyncio.Task[Any]) -> None:
    # The body has been read, so the next message the server sends is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    handler.cancel()


async def chat_completions(request: Request) -> Response:
    return await _generate(
        request, "chat", _reader(lambda body: _Completions(validated(ChatRequest, body)))
    )


async def completions(request: Request) -> Response:
    return await _generate(
        request, "completions", _reader(lambda body: _Completions(validated(TextRequest, body)))
    )


async def responses(request: Request) -> Response:
    return await _generate(request, "responses", _read_responses)


def _model_entry(info: Any, created: int) -> dict[str, Any]:
    return {
        "id": info.id,
        "object": "model",
        "created": created,
        "owned_by": "smallfirst",
        "tier": info.tier,
        "backend": info.backend,
        "context_length": info.context_length,
        "max_model_len": info.context_length,  # vLLM's name, which some clients read
        "input_cost_per_1m": info.input_cost_per_1m,
        "output_cost_per_1m": info.output_cost_per_1m,
        "loaded": info.loaded,
        "tools": info.tools,
    }


def _embedding_entry(created: int) -> dict[str, Any]:
    """The local encoder of /v1/embeddings (OpenAI lists its embedding models too)."""
    from smallfirst import embed

    return {
        "id": embed.MODEL_ID,
        "object": "model",
        "created": created,
        "owned_by": "smallfirst",
        "tier": None,
        "backend": "embeddings",
        "context_length": embed.MAX_TOKENS,  # per input
        "max_model_len": embed.MAX_TOKENS,
        "input_cost_per_1m": 0.0,
        "output_cost_per_1m": 0.0,
        "loaded": embed.get_embedder.cache_info().currsize > 0,  # loaded on first use
        "tools": False,
        "dimensions": embed.DIMENSIONS,
    }


async def _model_entries(request: Request) -> list[dict[str, Any]]:
    """The configured models and the embedding model, then what a client may also ask for:
    `auto` (the router picks) and `rag/<collection>` per ingested collection, so model
    pickers in UIs offer them too."""
    gw = gateway(request)
    created = int(request.app.state.started_at)
    models = gw.models()
    entries = [_model_entry(info, created) for info in models]
    shortest_context = min(info.context_length for info in models)
    routed = {
        "object": "model",
        "created": created,
        "owned_by": "smallfirst",
        "tier": None,
        "context_length": shortest_context,
        "max_model_len": shortest_context,
        "input_cost_per_1m": None,
        "output_cost_per_1m": None,
        "loaded": True,
        "tools": any(info.tools for info in models),
    }
    entries.append(_embedding_entry(created))
    entries.append({**routed, "id": AUTO_MODEL, "backend": "router"})
    for collection in await gw.rag.collections():
        private = gw.settings.rag.is_private(collection)
        entries.append({**routed, "id": f"rag/{collection}", "backend": "rag", "private": private})
    return entries


async def list_models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": await _model_entries(request)})


async def get_model(request: Request) -> Response:
    model_id = request.path_params["model_id"]
    if not model_id:  # /v1/models/
        return await list_models(request)
    for entry in await _model_entries(request):
        if entry["id"] == model_id:
            return JSONResponse(entry)
    if model_id in EMBEDDING_MODEL_IDS:  # the alias /v1/embeddings answers to, not listed twice
        return JSONResponse({**_embedding_entry(int(request.app.state.started_at)), "id": model_id})
    raise ModelNotFound(f"The model `{model_id}` does not exist", param="model")


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok", "time": time.time()})


async def readyz(request: Request) -> Response:
    ready: asyncio.Event = request.app.state.ready
    problem: str | None = request.app.state.startup_problem
    if ready.is_set() and problem is None:
        return JSONResponse({"status": "ready"})
    if problem is not None and request.app.state.keyring.required:
        problem = "see the server's log"  # /readyz takes no key: it named files on disk
    return JSONResponse(
        {"status": "starting" if problem is None else "failed", "problem": problem}, status_code=503
    )


async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


# API keys on /v1 are checked before any of these run, by server.auth.ApiKeyGate.
ROUTES: list[BaseRoute] = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/responses", responses, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    # `input_items` (GET) and `cancel` (POST): a `:path` id took in "/v1/responses/" too, so a
    # POST there was a 405 instead of the slash redirect every other route gets
    Route("/v1/responses/{response_id}/{part:path}", response_part, methods=["GET", "POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/dashboard", dashboard, methods=["GET"]),
]
