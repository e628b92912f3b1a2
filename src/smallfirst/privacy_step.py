"""The privacy step of the request path: inspect once, then send each tier what its policy
allows (the original, a redacted copy, or nothing) and put redacted values back in answers.

Kept beside `service.py` (not inside `privacy/`) because it joins the guard to requests and
backend results; the detection and policy themselves live in the privacy room.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smallfirst.completions import Chunk, Completion, ModelInfo, ToolCallDelta
from smallfirst.config import Settings
from smallfirst.errors import INTERNAL_ERROR_MESSAGE, PolicyBlocked, SmallfirstError
from smallfirst.paths import create_private_dir
from smallfirst.privacy.identifiers import (
    UNREDACTABLE_NAMES,
    identifier_as_text,
    pattern_as_text,
)
from smallfirst.privacy.json_text import readable_json
from smallfirst.privacy.policy import tier_policy
from smallfirst.privacy.schema_texts import map_schema_texts, schema_names, schema_patterns
from smallfirst.request_options import Tool
from smallfirst.streams import close_stream
from smallfirst.types import ChatMessage, ChatRequest, GenerateRequest, Tier, ToolCall

PSEUDONYM_KEY_FILE = "pseudonym.key"
PSEUDONYM_KEY_BYTES = 32
log = logging.getLogger("smallfirst.privacy")
# request fields that identify a person or a group of them, and their pseudonyms' prefixes
PSEUDONYMOUS_FIELDS = {"user": "user", "safety_identifier": "id", "prompt_cache_key": "cache"}

if TYPE_CHECKING:
    from smallfirst.privacy import GuardResult, PrivacyGuard, StreamRestorer
    from smallfirst.privacy.detect import Finding
    from smallfirst.privacy.policy import PolicyAction


@dataclass
class Inspection:
    """Findings for one request, aligned with the messages that will be sent."""

    findings: list[list[Finding]]
    override: PolicyAction | None
    # PII in function and property names, which go upstream as they are (no redaction)
    in_unredactable: list[Finding] = field(default_factory=list)
    permitted: list[Tier] = field(default_factory=list)  # tiers the policy lets it reach
    applied: dict[str, str] = field(default_factory=dict)  # model id -> action taken
    keep_local: str | None = None  # why the cloud may not see this request at all
    blocked: str | None = None

    def action_for(self, model_id: str | None, *, refused: bool = False) -> str | None:
        """The audit word for the log, what was done with the PII: `block` (the request was
        refused for it), `redact` (a model was sent a redacted copy, even one that failed
        before another answered), `local_only` (the cloud was ruled out), or what the
        answering model got."""
        if self.blocked or refused:
            return "block"
        if "redact" in self.applied.values():
            return "redact"
        if self.keep_local:
            return "local_only"
        return self.applied.get(model_id or "")

    @property
    def counts(self) -> dict[str, int]:
        found = [*(f for per in self.findings for f in per), *self.in_unredactable]
        return dict(Counter(f.entity_type for f in found))

    def audit_json(self) -> str | None:
        return json.dumps(self.counts, sort_keys=True) if self.counts else None

    def align_to(self, messages: list[ChatMessage]) -> None:
        """Messages were prepended (a RAG system message): they carry no findings."""
        missing = len(messages) - len(self.findings)
        self.findings = [[] for _ in range(missing)] + self.findings


class PrivacyStep:
    def __init__(self, settings: Settings, models: list[ModelInfo]) -> None:
        self.config = settings.privacy
        policy = self.config.tier_policy
        # With every configured tier on `allow`, nothing can leave unprotected: skip the NER cost.
        self.active = self.config.enabled and any(policy[m.tier] != "allow" for m in models)
        self._guard: PrivacyGuard | None = None
        self._pseudonym_key_path = settings.resolved_data_dir / PSEUDONYM_KEY_FILE
        self._pseudonym_key: bytes | None = None

    @property
    def guard(self) -> PrivacyGuard:
        if self._guard is None:
            from smallfirst.privacy import PrivacyGuard

            self._guard = PrivacyGuard(self.config)
        return self._guard

    async def warm_up(self) -> None:
        if self.active:
            await asyncio.to_thread(self.guard.detector.warm_up)

    async def inspect(self, request: GenerateRequest) -> Inspection | None:
        """What the request holds (None when nothing was found) and what that forbids."""
        if not self.active and request.privacy is None:
            return None
        findings, in_names = await asyncio.to_thread(
            self.guard.inspect_with_names, messages_of(request), unredactable_names_of(request)
        )
        inspection = Inspection(findings, request.privacy, in_unredactable=in_names)
        if not inspection.counts:
            return None
        inspection.permitted = permitted = self.guard.permitted_tiers(
            findings, request.privacy, unredactable=in_names
        )
        kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(inspection.counts.items()))
        if not permitted:
            inspection.blocked = f"privacy policy blocks this request: it contains {kinds}"
        elif "cloud" not in permitted:
            where = f"; {UNREDACTABLE_NAMES}" if in_names else ""
            inspection.keep_local = f"PII ({kinds}{where}) stays on premises"
        return inspection

    async def inspected_again(self, request: GenerateRequest, inspection: Inspection) -> Inspection:
        """`inspection`'s verdicts with the findings of `request`, the inspected request with
        fewer retrieved sources. The actions taken for each model stay shared: the log says
        `redact` when any model was sent a redacted copy."""
        findings, _ = await asyncio.to_thread(
            self.guard.inspect_with_names, messages_of(request), ()
        )
        return replace(inspection, findings=findings)

    def refuse_early(
        self, request: GenerateRequest, model: ModelInfo, inspection: Inspection | None
    ) -> None:
        """Raise now the PolicyBlocked that answering with `model` (asked for by id) would
        raise, before anything is sent anywhere: a batch's other prompts included."""
        if not permits(inspection, model):
            self.request_for(request, model, inspection)

    def request_for(
        self, request: GenerateRequest, model: ModelInfo, inspection: Inspection | None
    ) -> tuple[GenerateRequest, GuardResult | None]:
        """What `model` may receive; raises PolicyBlocked if it may receive nothing."""
        request = self._with_pseudonymous_ids(request, model)
        if inspection is None:
            return request, None
        scanned, head = _scanned_with_head(request)
        result = self.guard.apply(
            scanned,
            model.tier,
            override=request.privacy,
            findings=inspection.findings,
            unredactable=inspection.in_unredactable,
            numbered_first=head,
        )
        inspection.applied[model.id] = result.action
        if result.redaction is None:
            return request, result
        if isinstance(request, ChatRequest):
            asked = request.response_format
            result.json_answer = asked is not None and asked.type != "text"
            return request.model_copy(update=_with_scanned(request, result.messages)), result
        if request.prompt_tokens is not None:
            raise PolicyBlocked(
                f"the privacy policy redacts what {model.id} receives, and a prompt of token"
                " ids cannot be redacted: send it as text"
            )
        texts = iter(message.text for message in result.messages)
        update: dict[str, Any] = {"prompt": next(texts)}
        if request.suffix is not None:
            update["suffix"] = next(texts)
        return request.model_copy(update=update | _stop_of(request, texts)), result

    def _with_pseudonymous_ids(self, request: GenerateRequest, model: ModelInfo) -> GenerateRequest:
        """`user` (and `safety_identifier`, `prompt_cache_key`) is often an e-mail address or
        a name. A tier whose policy is not `allow` gets a stable pseudonym instead (keyed hash;
        the key stays in the data dir), which is what OpenAI asks for and still lets the
        upstream tell users (and cache groups) apart. So do tool-call ids (`_with_call_ids`).
        The request's own `privacy` counts: "redact" asked of an `allow` tier hides them too."""
        policy = tier_policy(self.config, model.tier, request.privacy)
        if not self.config.enabled or policy == "allow":
            return request
        update: dict[str, Any] = {
            field: f"{prefix}-{self._pseudonym(value)}"
            for field, prefix in PSEUDONYMOUS_FIELDS.items()
            if (value := getattr(request, field))
        }
        if isinstance(request, ChatRequest) and any(
            message.tool_calls or message.tool_call_id for message in request.messages
        ):
            update["messages"] = [self._with_call_ids(message) for message in request.messages]
        return request.model_copy(update=update) if update else request

    def _with_call_ids(self, message: ChatMessage) -> ChatMessage:
        """Tool-call ids pair a call with its result and mean nothing else upstream, yet a
        client may build them from what it has ("lookup-ana@flux.io"), and the NER reads
        random ids as names or places (37 of 2,000 generated ids in OpenAI's, Anthropic's and
        Mistral's forms): each becomes a pseudonym, the same for the call and its result, and
        on every turn (so the upstream's prompt cache still matches). Hex of the id's length
        (at least 9): Mistral's API refuses any id but exactly 9 letters and digits."""
        update: dict[str, Any] = {}
        if message.tool_call_id:
            update["tool_call_id"] = self._call_id(message.tool_call_id)
        if message.tool_calls:
            update["tool_calls"] = [
                call.model_copy(update={"id": self._call_id(call.id)})
                for call in message.tool_calls
            ]
        return message.model_copy(update=update) if update else message

    def _call_id(self, value: str) -> str:
        return self._pseudonym(value, length=max(len(value), 9))

    def _pseudonym(self, value: str, *, length: int = 20) -> str:
        return hmac.new(self._key(), value.encode(), hashlib.sha256).hexdigest()[:length]

    def _key(self) -> bytes:
        if self._pseudonym_key is None:
            path = self._pseudonym_key_path
            if not path.exists():
                _create_key_file(path)
            key = path.read_bytes()
            if len(key) != PSEUDONYM_KEY_BYTES:  # an empty one made pseudonyms anyone computes
                log.error("%s", _damaged_key(path, len(key)))
                raise SmallfirstError(INTERNAL_ERROR_MESSAGE)
            self._pseudonym_key = key
        return self._pseudonym_key


def pseudonym_key_problem(data_dir: Path) -> str | None:
    """Why the pseudonym key in `data_dir` cannot be used; None if it can, or is not made
    yet (it is on first use), or `data_dir` is no folder (the data dir's check says so)."""
    path = data_dir / PSEUDONYM_KEY_FILE
    try:
        size = path.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return None
    return None if size == PSEUDONYM_KEY_BYTES else _damaged_key(path, size)


def _damaged_key(path: Path, size: int) -> str:
    return (
        f"the pseudonym key {path} is damaged ({size} bytes, not {PSEUDONYM_KEY_BYTES}):"
        " delete it to have a new one made (the pseudonyms sent upstream before then change)"
    )


def _create_key_file(path: Path) -> None:
    """32 random bytes at `path`, readable by this user only. Written aside and linked into
    place, so a process starting at the same time reads a whole key: whichever link lands
    first is the key of both."""
    create_private_dir(path.parent)
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=".pseudonym-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as key_file:
            key_file.write(secrets.token_bytes(PSEUDONYM_KEY_BYTES))
            key_file.flush()
            os.fsync(key_file.fileno())  # else a crash could leave the linked key empty
        os.link(aside, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(aside)


def permits(inspection: Inspection | None, model: ModelInfo) -> bool:
    """Whether the privacy policy lets `model` see the inspected request (redacted or not)."""
    return inspection is None or model.tier in inspection.permitted


def messages_of(request: GenerateRequest) -> list[ChatMessage]:
    """The texts the guard scans, as messages: each message, then its participant `name`,
    its `refusal` and the arguments of each tool call it made, then each `metadata` key and
    value, then the prose and values in the tool definitions and the response format's
    schema, and its name (each a message of its own, so findings and placeholders stay per
    text), and last the stop sequences (a transcript's "\nMaria:" names a speaker).
    What else goes upstream is no free text (numbers, enums, token ids), is replaced
    (`user`, tool-call ids: `_with_pseudonymous_ids`), or is a name that cannot be redacted
    (`unredactable_names_of`)."""
    return _scanned_with_head(request)[0]


def _scanned_with_head(request: GenerateRequest) -> tuple[list[ChatMessage], range]:
    """`messages_of(request)`, and where among them are the texts an upstream reads before
    the messages: the tool definitions and the response format, which it puts at the head of
    the prompt. Their values get the first placeholders, so a conversation's tools read the
    same on every turn; numbered after the messages, they took other numbers whenever a
    later message brought a new value, and the prompt's head, which upstreams cache, changed
    with them. One walk of the schemas for both: found apart, the head cost every schema a
    third walk for each model asked (50 tools of 365 texts: 13 to 46 ms of a 450 to 650 ms
    `request_for`, measured)."""
    stops = [ChatMessage(role="user", content=stop) for stop in request.stop_list]
    if not isinstance(request, ChatRequest):
        suffix = (
            [] if request.suffix is None else [ChatMessage(role="user", content=request.suffix)]
        )
        return [ChatMessage(role="user", content=request.prompt_text), *suffix, *stops], range(0)
    scanned = [text for message in request.messages for text in _scanned_of(message)]
    for key, value in (request.metadata or {}).items():  # a key is free text too
        scanned.extend(ChatMessage(role="user", content=text) for text in (key, value))
    texts: list[str] = []
    _schemas_of(request, _collect(texts))
    head = range(len(scanned), len(scanned) + len(texts))
    scanned.extend(ChatMessage(role="system", content=text) for text in texts)
    return [*scanned, *stops], head


def _scanned_of(message: ChatMessage) -> list[ChatMessage]:
    """A message's texts, as the guard scans them."""
    # Any message may be JSON (a tool's result often is), which may spell "é" as \u00e9:
    # read as characters.
    if isinstance(message.content, list):  # each part its own text: joined, the end of one
        # ran into the start of the next ("ana@x.comThanks" hid the address)
        scanned = [
            ChatMessage(role="user", content=readable_json(part.text)) for part in message.content
        ]
    elif isinstance(message.content, str):
        scanned = [message.model_copy(update={"content": readable_json(message.content)})]
    else:
        scanned = [message]
    if message.name:
        scanned.append(ChatMessage(role="user", content=identifier_as_text(message.name)))
    if message.refusal:  # echoed back by clients, and sent on to remote tiers
        scanned.append(ChatMessage(role="assistant", content=message.refusal))
    for call in message.tool_calls or []:
        arguments = readable_json(call.function.arguments)
        scanned.append(ChatMessage(role="assistant", content=arguments))
    return scanned


def scanned_count(message: ChatMessage) -> int:
    """How many of the texts the guard scans (`messages_of`) are the message's."""
    return len(_scanned_of(message))


def _with_scanned(request: ChatRequest, scanned: list[ChatMessage]) -> dict[str, Any]:
    """The request's fields that `messages_of` read, with its (redacted) texts put back in
    place: an update for `model_copy`."""
    texts = iter(scanned)
    rebuilt = []
    for message in request.messages:
        if isinstance(message.content, list):
            parts = [part.model_copy(update={"text": next(texts).text}) for part in message.content]
            redacted = message.model_copy(update={"content": parts})
        else:
            redacted = next(texts)
        if message.name:
            name = _redacted_name(message.name, next(texts).text)
            redacted = redacted.model_copy(update={"name": name})
        if message.refusal:
            redacted = redacted.model_copy(update={"refusal": next(texts).text})
        if message.tool_calls:
            calls = [_with_arguments(call, next(texts).text) for call in message.tool_calls]
            redacted = redacted.model_copy(update={"tool_calls": calls})
        rebuilt.append(redacted)
    update: dict[str, Any] = {"messages": rebuilt}
    if request.metadata is not None:
        metadata = {}
        for _ in request.metadata:
            key = next(texts).text
            metadata[key] = next(texts).text
        update["metadata"] = metadata
    update |= _schemas_of(request, lambda _: next(texts).text)
    return update | _stop_of(request, (message.text for message in texts))


def _stop_of(request: GenerateRequest, texts: Iterator[str]) -> dict[str, Any]:
    """The stop sequences as scanned (the rest of `texts`): an update for `model_copy`. A
    placeholder in one stops the answer where the model writes that placeholder."""
    return {"stop": list(texts)} if request.stop_list else {}


_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def _redacted_name(name: str, redacted: str) -> str:
    """A name (participant, response format), scanned as words and maybe redacted, back in
    the shape OpenAI accepts for a name (letters, digits, `_`, `-`): "Maria_Gonzalez" ->
    "<PERSON_1>" -> "PERSON_1", the label of the value's placeholder in the texts."""
    if redacted == identifier_as_text(name):
        return name
    return _NOT_IN_A_NAME.sub("_", redacted.replace("<", "").replace(">", "")).strip("_")[:64]


def _collect(texts: list[str]) -> Callable[[str], str]:
    def visit(text: str) -> str:
        texts.append(text)
        return text

    return visit


def _schemas_of(request: ChatRequest, visit: Callable[[str], str]) -> dict[str, Any]:
    """Tool definitions and the response format, each text mapped by `visit` (in the same
    order on every call): an update for `model_copy` with the fields the request has."""
    update: dict[str, Any] = {}
    if request.tools:
        update["tools"] = [_tool_with_texts(tool, visit) for tool in request.tools]
    spec = request.response_format.json_schema if request.response_format else None
    if request.response_format is not None and spec is not None:
        spec = spec.model_copy(
            update={
                "description": spec.description and visit(spec.description),
                "schema_": map_schema_texts(spec.schema_, visit),
                "name": _redacted_name(spec.name, visit(identifier_as_text(spec.name))),
            }
        )
        update["response_format"] = request.response_format.model_copy(update={"json_schema": spec})
    return update


def unredactable_names_of(request: GenerateRequest) -> list[str]:
    """Names that go upstream as they are: those of the functions (offered, or called in the
    conversation; `tool_choice` names one of the offered) and the property and definition
    names of their parameters and of the response format's schema (`identifiers.py`), and
    the schemas' regular expressions: each as the text the guard reads."""
    if not isinstance(request, ChatRequest):
        return []
    names = [tool.function.name for tool in request.tools or []]
    names += [call.function.name for m in request.messages for call in m.tool_calls or []]
    schemas = [tool.function.parameters for tool in request.tools or []]
    if request.response_format is not None and request.response_format.json_schema is not None:
        schemas.append(request.response_format.json_schema.schema_)
    names += [name for schema in schemas for name in schema_names(schema)]
    texts = [identifier_as_text(name) for name in names]
    texts += [pattern_as_text(p) for schema in schemas for p in schema_patterns(schema)]
    return list(dict.fromkeys(texts))


def _tool_with_texts(tool: Tool, visit: Callable[[str], str]) -> Tool:
    function = tool.function
    update = {
        "description": function.description and visit(function.description),
        "parameters": map_schema_texts(function.parameters, visit),
    }
    return tool.model_copy(update={"function": function.model_copy(update=update)})


def _with_arguments(call: ToolCall, arguments: str) -> ToolCall:
    return call.model_copy(
        update={"function": call.function.model_copy(update={"arguments": arguments})}
    )


def restore(result: Any, guard: GuardResult | None) -> Any:
    """Put redacted values back into a Completion, a list of chunks, or a chunk stream."""
    if guard is None or guard.redaction is None:
        return result
    if isinstance(result, Completion):
        calls = [
            _with_arguments(call, guard.restore(call.function.arguments, in_json_string=True))
            for call in result.tool_calls or []
        ]
        text = guard.restore(result.text, in_json_string=guard.json_answer)
        side = {  # an upstream's refusal and reasoning may quote the request too
            name: guard.restore(value)
            for name in ("refusal", "reasoning")
            if (value := getattr(result, name)) is not None
        }
        return result.model_copy(update={"text": text, "tool_calls": calls or None, **side})
    if isinstance(result, list):
        restored = _ChunkRestorer(guard)
        return [restored(chunk) for chunk in result]
    return _restored_stream(result, guard)


class _ChunkRestorer:
    """Values back into streamed pieces, each answer (`Chunk.index`) on its own."""

    def __init__(self, guard: GuardResult) -> None:
        self._guard = guard
        self._answers: dict[int, _AnswerRestorer] = {}

    def __call__(self, chunk: Chunk) -> Chunk:
        if chunk.index not in self._answers:
            self._answers[chunk.index] = _AnswerRestorer(self._guard)
        return self._answers[chunk.index](chunk)


class _AnswerRestorer:
    """Values back into one answer's streamed pieces: the text, the refusal, the reasoning
    and each tool call's arguments have their own restorer (a placeholder can be split
    across pieces of any); the last piece (it has a finish reason) flushes what was held
    back."""

    def __init__(self, guard: GuardResult) -> None:
        self._guard = guard
        self._text = guard.stream_restorer(in_json_string=guard.json_answer)
        self._refusal = guard.stream_restorer()
        self._reasoning = guard.stream_restorer()
        self._arguments: dict[int, StreamRestorer] = {}

    def __call__(self, chunk: Chunk) -> Chunk:
        text = self._text.feed(chunk.text)
        refusal = self._refusal.feed(chunk.refusal)
        reasoning = self._reasoning.feed(chunk.reasoning)
        calls = [
            delta.model_copy(
                update={"arguments": self._for_call(delta.index).feed(delta.arguments)}
            )
            for delta in chunk.tool_calls or []
        ]
        if chunk.finish_reason is not None:
            text += self._text.flush()
            refusal += self._refusal.flush()
            reasoning += self._reasoning.flush()
            for index, restorer in self._arguments.items():
                rest = restorer.flush()
                if rest:
                    calls.append(ToolCallDelta(index=index, arguments=rest))
        return chunk.model_copy(
            update={
                "text": text,
                "tool_calls": calls or None,
                "refusal": refusal,
                "reasoning": reasoning,
            }
        )

    def _for_call(self, index: int) -> StreamRestorer:
        if index not in self._arguments:
            self._arguments[index] = self._guard.stream_restorer(in_json_string=True)
        return self._arguments[index]


async def _restored_stream(
    chunks: AsyncIterator[Chunk], guard: GuardResult
) -> AsyncIterator[Chunk]:
    restored = _ChunkRestorer(guard)
    try:
        async for chunk in chunks:
            yield restored(chunk)
    except SmallfirstError as error:
        restore_error(error, guard)
        raise
    finally:
        await close_stream(chunks)


def restore_error(error: SmallfirstError, guard: GuardResult | None) -> None:
    """An upstream's own words (an error that quotes the request) with the client's values
    back, for the client that sent them (it read `<PERSON_1>`); what is shared beyond that
    client, `shareable_message`, is the summary without them."""
    if guard is not None and guard.redaction is not None and error.summary is not None:
        error.message = guard.restore(error.message)
