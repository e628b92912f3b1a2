"""The RAG step of the request path: put a collection's best chunks into the prompt, within
the answering model's context, and say which collections a client may ask for.

Kept beside `service.py` (like `privacy_step.py`) because it joins retrieval to requests and
models; search and prompt building themselves live in the rag room. The store is opened on
first use, so a gateway that never grounds a request never touches it. A store that cannot
be used (another version's, damaged) fails only the requests for `rag/<collection>`: the
model list leaves its collections out, and the problem is logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smallfirst.completions import ModelInfo
from smallfirst.config import AUTO_MODEL_ID, RagConfig
from smallfirst.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ModelUnavailable,
    SmallfirstError,
)
from smallfirst.types import ChatRequest, GenerateRequest

if TYPE_CHECKING:
    from pathlib import Path

    from smallfirst.rag import CollectionInfo, Hit, Retriever

logger = logging.getLogger(__name__)


def refuse_an_answer_longer_than_the_context(
    request: ChatRequest, model: ModelInfo, prompt: int
) -> None:
    """The 400 a plain request to `model` gets when its `prompt` (tokens, before sources) and
    `max_tokens` do not fit its context, checked before retrieval (the sources' budget would
    be negative)."""
    asked = request.token_limit
    if asked is None:
        return
    if prompt + asked > model.context_length:
        raise ContextLengthExceeded.told(
            model.context_length,
            prompt,
            asked,
            completion_text=f"{asked} in the completion",
            param="messages",
        )


def tokens_beside_messages(request: ChatRequest, count_tokens: Callable[[str], int]) -> int:
    """Prompt tokens `request` takes beside its messages' text: the tools it offers and the
    calls of earlier turns, counted as a local model is told them (a remote model counts the
    tools' schemas too). Left out of the sources' budget, a request with tools got as many
    sources as one without and then did not fit the model (a 400 from the model)."""
    from smallfirst.backends.local_tools import prompt_messages
    from smallfirst.rag.prompt import MESSAGE_OVERHEAD_TOKENS, conversation_tokens

    turns = prompt_messages(request)
    prompted = sum(count_tokens(turn["content"]) + MESSAGE_OVERHEAD_TOKENS for turn in turns)
    # a turn's tool results are one turn there: fewer markers than messages
    return max(0, prompted - conversation_tokens(request.messages, count_tokens))


def _prompt_beside_messages(
    request: ChatRequest, model: ModelInfo, count_tokens: Callable[[str], int]
) -> int:
    """`tokens_beside_messages`, once the conversation and the answer were found to fit
    `model`'s context (else its 400)."""
    from smallfirst.rag.prompt import conversation_tokens

    beside_messages = tokens_beside_messages(request, count_tokens)
    prompt = conversation_tokens(request.messages, count_tokens) + beside_messages
    refuse_an_answer_longer_than_the_context(request, model, prompt)
    return beside_messages


def _close(retriever: Retriever) -> None:
    retriever.close()
    retriever.store.close()


def _close_in_background(retriever: Retriever) -> None:
    """Closing waits for a copy being built (seconds at 100k chunks): no request waits."""
    asyncio.get_running_loop().run_in_executor(None, _close, retriever)


def rag_collection(model: str) -> str | None:
    """`rag/<collection>` names a document collection to answer from."""
    prefix, _, name = model.partition("/")
    return name if prefix == "rag" and name else None


@dataclass(frozen=True)
class Grounding:
    """The collection a request is grounded in, and the request field that named it (where
    an error about the collection points)."""

    collection: str
    param: str  # `model` (as `rag/<name>`) or `rag`


@dataclass(frozen=True)
class Retrieved:
    """What a search found for a request, before it is sized for a model's context."""

    request: ChatRequest  # the client's, without the sources
    collection: str
    hits: list[Hit]
    limit_field: str  # the answer's limit as the client names it, for the errors


@dataclass(frozen=True)
class Grounded:
    """A request with the sources that `sized_for`'s context holds fenced into its prompt."""

    request: ChatRequest
    citations: list[dict[str, Any]]
    sized_for: ModelInfo
    retrieved: Retrieved


def grounding_collection(request: GenerateRequest) -> tuple[GenerateRequest, Grounding | None]:
    """The collection a request is grounded in, if any, and the field that named it: model
    `rag/<name>` (the request then goes to the router) or `rag` (the model asked answers)."""
    collection = rag_collection(request.model)
    if collection is None:
        rag = request.rag if isinstance(request, ChatRequest) else None
        return request, Grounding(rag, "rag") if rag is not None else None
    if not isinstance(request, ChatRequest):
        raise InvalidRequest(  # the Responses API reads as chat here
            "rag/<collection> needs /v1/chat/completions or /v1/responses", param="model"
        )
    if request.rag not in (None, collection):
        raise InvalidRequest(
            f"model {request.model!r} and rag {request.rag!r} name different "
            "collections; a request is grounded in one: name it once",
            param="rag",
        )
    return request.model_copy(update={"model": AUTO_MODEL_ID}), Grounding(collection, "model")


class RagStep:
    def __init__(self, config: RagConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self._retriever: Retriever | None = None
        self._opening = asyncio.Lock()  # requests arriving together open the store once
        self._told: str | None = None  # the store's problem last logged
        # searches under way per retriever, and retrievers whose store file was replaced:
        # closed when their last search ends
        self._in_use: Counter[Retriever] = Counter()
        self._retired: set[Retriever] = set()

    async def ground(
        self,
        request: ChatRequest,
        collection: str,
        model: ModelInfo,
        count_tokens: Callable[[str], int],
        limit_field: str = "max_tokens",
    ) -> Grounded:
        """The request with the collection's best chunks fenced into its prompt (as many as
        `model`'s context holds beside the answer), and their citations. `limit_field`: the
        answer's limit as the client names it (`max_output_tokens` on /v1/responses)."""
        from smallfirst.rag import CollectionNotFound, last_user_text
        from smallfirst.rag.retrieve import has_words

        query = last_user_text(request.messages)
        if not has_words(query):  # the citations would be arbitrary
            raise InvalidRequest(
                "a rag request needs a user message to search with", param="messages"
            )
        beside_messages = _prompt_beside_messages(request, model, count_tokens)
        if not self._store_path().exists():  # opening it would make an empty one
            raise CollectionNotFound(f"RAG collection {collection!r} does not exist")
        config = self.config
        async with self._using() as retriever:
            with self._store_problems():
                hits = await asyncio.to_thread(
                    retriever.search,
                    query,
                    collection=collection,
                    k=config.k,
                    method=config.method,
                )
        if not hits:
            await self._refuse_if_nothing_to_search(collection)
        retrieved = Retrieved(request, collection, hits, limit_field)
        return await self._fitted(retrieved, model, count_tokens, beside_messages)

    async def sized_again(
        self, grounded: Grounded, model: ModelInfo, count_tokens: Callable[[str], int]
    ) -> Grounded:
        """`grounded`'s sources, not searched again, within `model`'s context: a fallback's
        whose context is smaller than the model they were sized for. Raises
        ContextLengthExceeded when not even the best one fits beside the conversation."""
        asked = grounded.retrieved.request
        beside_messages = _prompt_beside_messages(asked, model, count_tokens)
        return await self._fitted(grounded.retrieved, model, count_tokens, beside_messages)

    async def _fitted(
        self,
        retrieved: Retrieved,
        model: ModelInfo,
        count_tokens: Callable[[str], int],
        beside_messages: int,
    ) -> Grounded:
        from smallfirst.rag import build_grounded_messages

        request, limit_field = retrieved.request, retrieved.limit_field
        answer = request.token_limit or self.config.reserve_tokens
        kept_by = limit_field if request.token_limit else "rag.reserve_tokens"
        grounded = await asyncio.to_thread(
            build_grounded_messages,
            request.messages,
            retrieved.hits,
            count_tokens=count_tokens,
            budget=model.context_length - answer,
            limit_field=limit_field,
            beside_messages=beside_messages,
            budget_of=f"{model.id}'s context of {model.context_length} tokens less {answer}"
            f" kept for the answer by {kept_by}",
        )
        return Grounded(
            request.model_copy(update={"messages": grounded.messages}),
            [c.as_dict() for c in grounded.citations],
            model,
            retrieved,
        )

    async def collections(self) -> list[str]:
        """Collections a client may ask for as `model: "rag/<name>"` (none before an ingest,
        or while the store cannot be used; listing them does not create a store)."""
        from smallfirst.rag import StoreNeedsReindex, StoreUnusable

        if not self._store_path().exists():
            return []
        try:
            infos = await self._searchable_collections()
        except (StoreNeedsReindex, StoreUnusable, ModelUnavailable):  # logged; models are listed
            return []
        return [info.name for info in infos]

    async def refuse_an_unknown_collection(self, grounding: Grounding | None) -> None:
        """A 404 naming the field that asked, when the collection a request names was never
        ingested: said before any refusal for where its text may go (a misspelt name is no
        private collection)."""
        from smallfirst.rag import CollectionNotFound

        if grounding is None:
            return
        # a store that is not there is not opened: that would make an empty one
        ingested = await self._ingested() if self._store_path().exists() else []
        if grounding.collection not in {info.name for info in ingested}:
            raise CollectionNotFound(
                f"RAG collection {grounding.collection!r} does not exist", param=grounding.param
            )

    async def _searchable_collections(self) -> list[CollectionInfo]:
        """Collections with at least one chunk: one whose documents hold no text (empty
        files, scanned PDFs) could only answer without a source while looking grounded."""
        return [info for info in await self._ingested() if info.chunks]

    async def _ingested(self) -> list[CollectionInfo]:
        async with self._using() as retriever:
            with self._store_problems():
                return await asyncio.to_thread(retriever.store.collections)

    async def _refuse_if_nothing_to_search(self, collection: str) -> None:
        """A 404, as for a name never ingested, if `collection` has no chunk at all."""
        from smallfirst.rag import CollectionNotFound

        if collection not in {info.name for info in await self._searchable_collections()}:
            raise CollectionNotFound.without_text(collection)

    def close(self) -> None:
        for retriever in {*self._retired, *([self._retriever] if self._retriever else [])}:
            _close(retriever)
        self._retired.clear()
        self._retriever = None

    @asynccontextmanager
    async def _using(self) -> AsyncIterator[Retriever]:
        """The current retriever, kept open while the caller searches with it."""
        retriever = await self._opened()
        self._in_use[retriever] += 1
        try:
            yield retriever
        finally:
            self._in_use[retriever] -= 1
            if not self._in_use[retriever]:
                del self._in_use[retriever]
                if retriever in self._retired:
                    self._retired.discard(retriever)
                    _close_in_background(retriever)

    async def _opened(self) -> Retriever:
        """The retriever on the store, opened on first use, and again when its file was
        replaced (moved aside and ingested anew: the old connection would go on reading the
        old file); a store that cannot be opened is tried again on the next request
        (`smallfirst rag reindex` may have fixed it)."""
        from smallfirst.rag import Retriever, open_store

        async with self._opening:
            current = self._retriever
            if current is not None and current.store.replaced():
                self._retriever = None
                if current in self._in_use:
                    self._retired.add(current)
                else:
                    _close_in_background(current)
            if self._retriever is None:
                with self._store_problems():
                    store = await asyncio.to_thread(open_store, self.data_dir)
                self._retriever = Retriever(store)
            return self._retriever

    @contextmanager
    def _store_problems(self) -> Iterator[None]:
        """Inside, SQLite's errors on the store become clear ones (`StoreUnusable`), and each
        new problem that stops every RAG request is logged once, with what to do about it."""
        from smallfirst.rag import StoreNeedsReindex, StoreUnusable, store_errors

        try:
            with store_errors(self._store_path()):
                yield
        except (StoreNeedsReindex, StoreUnusable, ModelUnavailable) as exc:  # or sqlite-vec...
            if exc.message != self._told:
                self._told = exc.message
                logger.warning("RAG collections cannot be served: %s", exc.message)
            raise _as_told_to_clients(exc) from exc

    def _store_path(self) -> Path:
        from smallfirst.rag.store import STORE_FILENAME

        return self.data_dir / STORE_FILENAME


def _as_told_to_clients(error: SmallfirstError) -> SmallfirstError:
    """`error` without the store's path, which names the server's folders: the log has it,
    and the fix (as for a router that cannot be loaded). Missing packages name no path."""
    from smallfirst.rag import StoreBusy, StoreNeedsReindex, StoreUnusable

    if isinstance(error, StoreNeedsReindex):
        told = (
            "RAG collections cannot be served until the server's RAG store is reindexed for"
            " this version (`smallfirst rag reindex`; the server's log says more)"
        )
    elif isinstance(error, StoreBusy):
        told = "the server's RAG store is being written by another process: try again later"
    elif isinstance(error, StoreUnusable):
        told = (
            "RAG collections cannot be served: the server cannot use its RAG store now (the"
            " server's log says why)"
        )
    else:
        return error
    return type(error)(told)
