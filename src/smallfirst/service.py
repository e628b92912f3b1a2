"""The one orchestrator: guard -> route -> call -> log. The only module that knows all rooms.

The server hands it a validated request and gets back an answer (or a primed stream whose
first piece already exists, so that errors such as an over-long prompt become HTTP errors
before any byte of a 200 response is sent).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from smallfirst.backends import Backend, build_backends
from smallfirst.config import Settings
from smallfirst.errors import ModelNotFound, SmallfirstError
from smallfirst.logs import RequestLog, RequestRecord, request_cost
from smallfirst.types import ChatRequest, Chunk, Completion, GenerateRequest, ModelInfo, Usage

AUTO_MODEL = "auto"
Observer = Callable[[RequestRecord], None]


@dataclass
class RequestContext:
    endpoint: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    api_key_id: str | None = None
    route_override: str | None = None
    started: float = field(default_factory=time.perf_counter)
    created_at: float = field(default_factory=time.time)


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
    completion: Completion
    route: RouteInfo


@dataclass
class StreamAnswer:
    route: RouteInfo
    chunks: AsyncIterator[Chunk]


class Gateway:
    def __init__(
        self,
        settings: Settings,
        backends: dict[str, Backend] | None = None,
        request_log: RequestLog | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.settings = settings
        self.backends = backends if backends is not None else build_backends(settings)
        self.request_log = request_log
        self._observers: list[Observer] = list(observers)
        if request_log is not None:
            self._observers.append(request_log.record)

    @classmethod
    def from_settings(cls, settings: Settings, *, log_requests: bool = True) -> Gateway:
        log = RequestLog(settings.resolved_data_dir / "requests.db") if log_requests else None
        return cls(settings, request_log=log)

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    def models(self) -> list[ModelInfo]:
        return [b.info() for b in self.backends.values()]

    def default_model_id(self) -> str:
        if self.settings.default_model:
            return self.settings.default_model
        edge = [m.id for m in self.settings.models if m.tier == "edge"]
        return (edge or [m.id for m in self.settings.models])[0]

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
        if self.request_log is not None:
            self.request_log.close()

    # -- the request path -------------------------------------------------------------------
    def choose(self, request: GenerateRequest, ctx: RequestContext) -> tuple[Backend, RouteInfo]:
        """Pick the backend: a concrete model id bypasses routing; `auto` routes."""
        if request.model == AUTO_MODEL:
            default = self.backends[self.default_model_id()]
            return default, RouteInfo(default.info(), "default", "auto -> default model")
        backend = self.backends.get(request.model)
        if backend is None:
            raise ModelNotFound(
                f"The model `{request.model}` does not exist; see GET /v1/models", param="model"
            )
        return backend, RouteInfo(backend.info(), "none", "model requested by id")

    def _choose_logged(
        self, request: GenerateRequest, ctx: RequestContext
    ) -> tuple[Backend, RouteInfo]:
        try:
            return self.choose(request, ctx)
        except SmallfirstError as error:
            self._finish(request, ctx, None, Usage(), status=error.status, error=error)
            raise

    async def complete(self, request: GenerateRequest, ctx: RequestContext) -> Answer:
        backend, route = self._choose_logged(request, ctx)
        try:
            completion = await backend.complete(request)
        except SmallfirstError as error:
            self._finish(request, ctx, route, Usage(), status=error.status, error=error)
            raise
        self._finish(request, ctx, route, completion.usage, text=completion.text)
        return Answer(completion, route)

    async def stream(self, request: GenerateRequest, ctx: RequestContext) -> StreamAnswer:
        backend, route = self._choose_logged(request, ctx)
        try:
            chunks = backend.stream(request)
            first = await anext(chunks)
        except StopAsyncIteration:
            first = Chunk(finish_reason="stop", usage=Usage())
            chunks = _empty()
        except SmallfirstError as error:
            self._finish(request, ctx, route, Usage(), status=error.status, error=error)
            raise
        return StreamAnswer(route, self._observed_stream(request, ctx, route, first, chunks))

    async def _observed_stream(
        self,
        request: GenerateRequest,
        ctx: RequestContext,
        route: RouteInfo,
        first: Chunk,
        rest: AsyncIterator[Chunk],
    ) -> AsyncIterator[Chunk]:
        ttft = time.perf_counter()
        usage = Usage()
        parts: list[str] = []
        status, error = 499, None  # stays 499 if the client goes away mid-stream
        try:
            chunk: Chunk | None = first
            while chunk is not None:
                parts.append(chunk.text)
                usage = chunk.usage or usage
                yield chunk
                chunk = await anext(rest, None)
            status = 200
        except SmallfirstError as exc:
            status, error = exc.status, exc
            raise
        finally:
            await _close(rest)
            self._finish(
                request,
                ctx,
                route,
                usage,
                status=status,
                error=error,
                text="".join(parts),
                ttft=ttft,
            )

    def _finish(
        self,
        request: GenerateRequest,
        ctx: RequestContext,
        route: RouteInfo | None,
        usage: Usage,
        *,
        status: int = 200,
        error: SmallfirstError | None = None,
        text: str | None = None,
        ttft: float | None = None,
    ) -> None:
        now = time.perf_counter()
        model = route.model if route else None
        keep_text = self.settings.log_prompts
        record = RequestRecord(
            id=ctx.request_id,
            created_at=ctx.created_at,
            endpoint=ctx.endpoint,
            model_requested=request.model,
            model_answered=model.id if model and status < 400 else None,
            tier=model.tier if model else None,
            status=status,
            error_code=error.code if error else None,
            stream=request.stream,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency_ms=(now - ctx.started) * 1000,
            ttft_ms=(ttft - ctx.started) * 1000 if ttft is not None else None,
            cost_usd=request_cost(model, usage) if model else 0.0,
            api_key_id=ctx.api_key_id,
            route_reason=f"{route.router}: {route.reason}" if route else None,
            prompt=_prompt_text(request) if keep_text else None,
            response=text if keep_text else None,
        )
        for observe in self._observers:
            observe(record)


def _prompt_text(request: GenerateRequest) -> str:
    if isinstance(request, ChatRequest):
        return "\n".join(f"{m.role}: {m.text}" for m in request.messages)
    return request.prompt_text


async def _close(iterator: AsyncIterator[Chunk]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


async def _empty() -> AsyncIterator[Chunk]:
    return
    yield
