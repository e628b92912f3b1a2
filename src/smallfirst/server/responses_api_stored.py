"""Stored responses over HTTP: `previous_response_id` resolved to the conversation it goes on
from and `item_reference` items to the items they name, what is kept of an answer (`store`),
and `GET` / `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`.

A response is kept as it was returned (the last event's Response, for a stream) with its input
items: the chain's items, then its own (a text `input` as a user message; every item with an
id and the fields OpenAI's items have, so that the SDK reads them). The chain is linked, not
copied (`stored_responses/store.py`): one deleted does not break the responses made after it.
Only the API key that stored a response finds it: another key's id is a 404, as an unknown one
is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from smallfirst.errors import InvalidRequest, NotStored
from smallfirst.server.auth import api_key_of
from smallfirst.server.responses import JSONResponse
from smallfirst.server.responses_api_request import (
    LOGPROBS_INCLUDE,
    OPENAI_INCLUDABLE,
    TEXT_PART_TYPES,
    ResponsesRequest,
)
from smallfirst.stored_responses import ResponseStore, StoredResponse, StoredResponsesUnavailable

DEFAULT_ITEMS, MAX_ITEMS = 20, 100  # OpenAI's for `limit`
ITEM_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
# /v1/responses/{id}/<part>: the methods it answers (HEAD with GET, as every GET route)
PART_METHODS = {"input_items": ("GET", "HEAD"), "cancel": ("POST",)}
log = logging.getLogger("smallfirst.server")


class PreviousResponseNotFound(NotStored):
    """OpenAI's status and code: clients that chain turns (Codex) know it and send the whole
    conversation instead."""

    code = "previous_response_not_found"


def response_store(request: Request) -> ResponseStore | None:
    """None when `server.store_responses` is off."""
    store: ResponseStore | None = request.app.state.stored_responses
    return store


@dataclass
class Keeping:
    """Where an answer to a Responses request is stored, and the stored response
    `previous_response_id` named, which it goes on from (None without one)."""

    store: ResponseStore | None  # None: not stored (`store: false`, or storing is off)
    api_key_id: str | None
    previous: StoredResponse | None
    private_collection: str | None = None  # the private one the request is grounded in
    # the private one a response that `input` refers to (`item_reference`) was grounded in
    referenced_private_collection: str | None = None

    @property
    def earlier_private_collection(self) -> str | None:
        """A private collection the conversation before the request, or an item it refers to,
        was grounded in."""
        if self.previous is not None and self.previous.private_collection is not None:
            return self.previous.private_collection
        return self.referenced_private_collection

    @property
    def earlier(self) -> list[dict[str, Any]]:
        """The conversation before the request's own input."""
        return self.previous.conversation if self.previous is not None else []

    async def keep(
        self, asked: ResponsesRequest, response: dict[str, Any], request_id: str
    ) -> None:
        """Store `response` (as returned) with its input items. A store that cannot be written
        turns `store` false in the response, which is not sent yet: its client learns that
        it cannot go on from it, and gets its answer all the same."""
        if self.store is None:
            return
        items = own_input_items(asked, request_id)
        try:
            await asyncio.to_thread(
                self.store.put,
                response["id"],
                self.api_key_id,
                items,
                response,
                self.previous,
                self.private_collection or self.earlier_private_collection,
            )
        except StoredResponsesUnavailable:  # logged, with the file, by the store
            response["store"] = False


async def keeping_for(
    asked: ResponsesRequest, store: ResponseStore | None, api_key_id: str | None
) -> Keeping:
    """How a request is stored, and the stored response `previous_response_id` goes on from:
    a 404 `previous_response_not_found` for one not stored (or stored by another key), a 400
    when this gateway stores none."""
    previous = None
    if asked.previous_response_id is not None:
        if store is None:
            raise InvalidRequest(
                "previous_response_id is not supported: storing responses is off on this"
                " gateway (server.store_responses); send the whole conversation in `input`",
                param="previous_response_id",
            )
        previous = await asyncio.to_thread(store.get, asked.previous_response_id, api_key_id)
        if previous is None:
            raise PreviousResponseNotFound(
                f"Previous response with id '{asked.previous_response_id}' not found.",
                param="previous_response_id",
            )
    kept = store if asked.store is not False else None
    referenced = await _resolve_item_references(asked, store, api_key_id)
    private = next((r.private_collection for r in referenced if r.private_collection), None)
    return Keeping(kept, api_key_id, previous, referenced_private_collection=private)


async def _resolve_item_references(
    asked: ResponsesRequest, store: ResponseStore | None, api_key_id: str | None
) -> list[StoredResponse]:
    """Replaces each `item_reference` in `input` with the stored item it names; returns the
    responses those came from. An item is found through the id this gateway gave it, which
    names the response that holds it (`msg_<request id>_...`): of a response stored by the
    same key, neither deleted nor expired, as `previous_response_id` finds one."""
    if isinstance(asked.input, str):
        return []
    holders: dict[str, StoredResponse | None] = {}
    resolved: list[dict[str, Any]] = []
    for index, item in enumerate(asked.input):
        if not _is_reference(item):
            resolved.append(item)
            continue
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise InvalidRequest(f"input.{index}: id is required", param=f"input.{index}.id")
        if store is None:
            raise InvalidRequest(
                "item_reference is not supported: storing responses is off on this gateway"
                " (server.store_responses); send the item itself in `input`",
                param=f"input.{index}",
            )
        resolved.append(await _stored_item_named(item_id, holders, store, api_key_id))
    asked.input = resolved
    return [holder for holder in holders.values() if holder is not None]


async def _stored_item_named(
    item_id: str,
    holders: dict[str, StoredResponse | None],
    store: ResponseStore,
    api_key_id: str | None,
) -> dict[str, Any]:
    """The stored item `item_id` names; `holders`: the responses read so far, by id."""
    response_id = _holder_id(item_id)
    if response_id is not None and response_id not in holders:
        holders[response_id] = await asyncio.to_thread(store.get, response_id, api_key_id)
    holder = holders.get(response_id) if response_id is not None else None
    for item in holder.conversation if holder is not None else []:
        if item.get("id") == item_id:
            return item
    raise NotStored(f"Item with id '{item_id}' not found.", param="input")


def _is_reference(item: dict[str, Any]) -> bool:
    """OpenAI's `{"type": "item_reference", "id": ...}`, whose type may be left out."""
    kind = item.get("type")
    return kind == "item_reference" or (kind is None and set(item) - {"type"} == {"id"})


def _holder_id(item_id: str) -> str | None:
    """The response holding an item with an id this gateway gave (None for another id)."""
    prefix, _, rest = item_id.partition("_")
    request_id, _, place = rest.partition("_")
    if prefix not in ITEM_ID_PREFIXES.values() or not request_id or not place:
        return None
    return f"resp_{request_id}"


def own_input_items(asked: ResponsesRequest, request_id: str) -> list[dict[str, Any]]:
    """The request's `input` as stored items (read back as the same conversation)."""
    return [
        _stored_item(item, f"{ITEM_ID_PREFIXES[item.get('type', 'message')]}_{request_id}_in{i}")
        for i, item in enumerate(asked.input_items())
    ]


def _stored_item(item: dict[str, Any], new_id: str) -> dict[str, Any]:
    """An input item as OpenAI lists it: with an id (the client's, else `new_id`), a status,
    and a message's content as parts (an assistant's `output_text` with its annotations)."""
    kind = item.get("type", "message")
    given = item.get("id")
    stored: dict[str, Any] = {"id": given if isinstance(given, str) and given else new_id}
    if kind == "message":
        assistant = item["role"] == "assistant"
        content = item["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        stored.update(
            type="message",
            role=item["role"],
            content=[_stored_part(part, assistant) for part in parts],
        )
    elif kind == "function_call":
        arguments = item.get("arguments")
        stored.update(
            type="function_call",
            call_id=item["call_id"],
            name=item["name"],
            arguments=arguments if isinstance(arguments, str) else "",
        )
    else:
        stored.update(type=kind, call_id=item["call_id"], output=item["output"])
    stored["status"] = "completed"
    return stored


def _stored_part(part: dict[str, Any], assistant: bool) -> dict[str, Any]:
    if part["type"] not in TEXT_PART_TYPES:  # a refusal: as it came
        return part
    if assistant:
        return {"type": "output_text", "text": part["text"], "annotations": []}
    return {"type": "input_text", "text": part["text"]}


# -- GET / DELETE ------------------------------------------------------------------------------


async def _stored(request: Request) -> tuple[ResponseStore, StoredResponse]:
    store = response_store(request)
    response_id = request.path_params["response_id"]
    found = None
    if store is not None:
        found = await asyncio.to_thread(store.get, response_id, api_key_of(request))
    if store is None or found is None:
        raise _not_found(response_id, store)
    return store, found


def _not_found(response_id: str, store: ResponseStore | None) -> NotStored:
    if store is None:
        return NotStored(
            f"Response with id '{response_id}' not found: storing responses is off on this"
            " gateway (server.store_responses)",
            param="response_id",
        )
    return NotStored(f"Response with id '{response_id}' not found.", param="response_id")


async def retrieve_response(request: Request) -> Response:
    if request.query_params.get("stream", "false").lower() not in ("false", "0"):
        raise InvalidRequest(
            "stream is not supported here: a stored response is returned whole", param="stream"
        )
    _, found = await _stored(request)
    return JSONResponse(found.response)


async def delete_response(request: Request) -> Response:
    store = response_store(request)
    response_id = request.path_params["response_id"]
    if store is None or not await asyncio.to_thread(store.delete, response_id, api_key_of(request)):
        raise _not_found(response_id, store)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


async def response_part(request: Request) -> Response:
    """`input_items` (GET); `cancel` (POST), which only background responses have. Another
    method is a 405, another part a 404, in the words every other route's have."""
    part = request.path_params["part"]
    methods = PART_METHODS.get(part)
    if methods is None:
        raise HTTPException(404)
    if request.method not in methods:
        raise HTTPException(405, headers={"allow": ", ".join(methods)})
    if part == "input_items":
        _, found = await _stored(request)
        items = found.input_items
        if LOGPROBS_INCLUDE not in _included(request):
            items = [_without_logprobs(item) for item in items]
        return JSONResponse(_item_page(items, request))
    await _stored(request)  # a 404 for an unknown one
    raise InvalidRequest(
        "Only responses created with background=true can be cancelled; every response"
        " here was finished in the request that made it.",
        param="response_id",
    )


def _included(request: Request) -> set[str]:
    """`include`, as the openai SDK sends it (`include=a&include=b`) or as `include[]=a`: any
    of OpenAI's values, of which only the logprobs of the earlier answers in the list can be
    there to add (the other kinds of item are never stored here, their requests refused)."""
    query = request.query_params
    asked = [*query.getlist("include"), *query.getlist("include[]")]
    for value in asked:
        if value not in OPENAI_INCLUDABLE:
            raise InvalidRequest(
                f"Invalid value for 'include': {value!r}; expected one of"
                f" {', '.join(map(repr, OPENAI_INCLUDABLE))}.",
                param="include",
            )
    return set(asked)


def _without_logprobs(item: dict[str, Any]) -> dict[str, Any]:
    """An earlier answer's message with its `output_text` logprobs empty, as it would have
    been returned without `include` asking for them."""
    if item.get("type") != "message" or not any(part.get("logprobs") for part in item["content"]):
        return item
    parts = [{**part, "logprobs": []} if part.get("logprobs") else part for part in item["content"]]
    return {**item, "content": parts}


def _item_page(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    """OpenAI's list: `order` (default `desc`, the newest first), `after` (an item id: the items
    that follow it in that order), `limit` (1-100, default 20)."""
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(
            f"Invalid value for 'order': {order!r}; expected 'asc' or 'desc'.", param="order"
        )
    limit = _limit(query.get("limit"))
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after is not None:
        position = next((i for i, item in enumerate(ordered) if item.get("id") == after), None)
        if position is None:
            raise InvalidRequest(
                f"No input item with id '{after}' in this response.", param="after"
            )
        ordered = ordered[position + 1 :]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_ITEMS
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_ITEMS:
        raise InvalidRequest(
            f"Invalid value for 'limit': {text!r}; expected an integer from 1 to {MAX_ITEMS}.",
            param="limit",
        )
    return limit
