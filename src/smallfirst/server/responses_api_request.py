"""`POST /v1/responses` requests: OpenAI's Responses API, read into a `ChatRequest`.

The conversation is `input`, after the stored one `previous_response_id` names when it names
one (`responses_api_stored.py` finds it: its items come in as `earlier`). Text, function tools
and JSON output are supported; what would change the answer and cannot be honoured here
(images, built-in tools, reasoning settings, background runs) is a 400 naming the field,
never silently dropped. `truncation: "auto"` is the gateway's (`truncation.py`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from smallfirst.api_model import NAME_PATTERN, ApiModel, FieldError
from smallfirst.errors import InvalidRequest
from smallfirst.request_options import FunctionDefinition, FunctionName
from smallfirst.server.errors import unknown_field, validation_error
from smallfirst.types import (
    MAX_MESSAGES,
    MAX_TOOLS,
    ChatMessage,
    ChatRequest,
    FunctionCall,
    Metadata,
    ServiceTier,
    TextPart,
    ToolCall,
)

TEXT_PART_TYPES = {"input_text", "output_text", "text"}
# The fields OpenAI's input items and their content parts have (its SDK's
# ResponseInputItemParam), of the kinds read here: a client's own, and those an answer's items
# come back with when a client sends them on as input (ids, statuses, a message's phase, a
# call's caller, an answer's annotations and logprobs), which describe the earlier answer and
# change nothing here. Any other field is a 400, as an unknown field of the request is.
ITEM_FIELDS = {
    "message": frozenset({"type", "role", "content", "id", "status", "phase"}),
    "function_call": frozenset(
        {"type", "call_id", "name", "arguments", "id", "status", "caller", "namespace", "async"}
    ),
    "function_call_output": frozenset(
        {"type", "call_id", "output", "id", "status", "caller", "name", "namespace"}
    ),
    "item_reference": frozenset({"type", "id"}),
}
PART_FIELDS = {
    "input_text": frozenset({"type", "text", "prompt_cache_breakpoint"}),
    "text": frozenset({"type", "text", "prompt_cache_breakpoint"}),  # chat's
    "output_text": frozenset({"type", "text", "annotations", "logprobs"}),
    "refusal": frozenset({"type", "refusal"}),
}
PARTS_FIELD = {"message": "content", "function_call_output": "output"}
LOGPROBS_INCLUDE = "message.output_text.logprobs"
# What `include` may ask for: the answer's logprobs, and reasoning that no model here writes
# (clients that keep no responses on the server ask for it in every request).
INCLUDABLE = {LOGPROBS_INCLUDE, "reasoning.encrypted_content"}
# Every value OpenAI's `include` takes (its ResponseIncludable): what listing a stored
# response's input items accepts, where only the answers' logprobs can be there to add
OPENAI_INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    LOGPROBS_INCLUDE,
)
FORMAT_NAME = "response"  # a json_schema format's name when the request gives none
# Fields that refer to what OpenAI keeps on its side and this gateway does not.
STORED_STATE = {
    "conversation": "stores no conversations; send the whole conversation in `input`",
    "prompt": "stores no prompt templates; send `instructions` and `input` instead",
    "context_management": "never compacts a conversation; send it whole in `input` (with"
    " truncation 'auto', its oldest turns go where it does not fit)",
}


class FunctionTool(FunctionDefinition):
    """A Responses API tool: the chat API's function definition, flat."""

    type: Literal["function"]


class NamedFunction(FunctionName):
    type: Literal["function"]


class AllowedFunctions(ApiModel):
    """The Responses API's `allowed_tools` choice: chat's, flat."""

    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[NamedFunction] = Field(min_length=1)


class TextFormat(ApiModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> TextFormat:
        if self.type == "json_schema" and self.schema_ is None:
            raise FieldError("schema", "a json_schema format needs its schema")
        return self


class TextConfig(ApiModel):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None  # chat's `verbosity`


class ResponseStreamOptions(ApiModel):
    include_obfuscation: bool | None = None  # as chat's: no stream here is padded


class ResponsesRequest(ApiModel):
    model: str = Field(min_length=1)
    input: str | Annotated[list[dict[str, Any]], Field(max_length=MAX_MESSAGES)]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    stream_options: ResponseStreamOptions | None = None
    background: bool | None = None
    service_tier: ServiceTier | None = None
    tools: Annotated[list[dict[str, Any]], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | AllowedFunctions | None = (
        None
    )
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    metadata: Metadata | None = None
    store: bool | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1)
    max_tool_calls: int | None = Field(default=None, ge=0)  # built-in tools': none here
    # OpenAI's server-side state that this gateway does not keep: see STORED_STATE
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    context_management: list[dict[str, Any]] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # smallfirst extensions, as on /v1/chat/completions
    route: str | None = None
    max_strong_share: float | None = None
    min_quality: float | None = None
    privacy: str | None = None
    rag: str | None = None

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _function_choice_only(cls, value: Any) -> Any:
        """Other kinds of choice (allowed_tools, built-in tools) named as such; they read as
        "tool_choice.name: Field required"."""
        if isinstance(value, dict) and value.get("type") not in ("function", "allowed_tools"):
            raise ValueError(
                f"tool_choice of type {value.get('type')!r} is not supported (none, auto, "
                'required, {"type": "function", "name": ...} and allowed_tools of functions are)'
            )
        return value

    @model_validator(mode="after")
    def _no_unknown_item_fields(self) -> ResponsesRequest:
        """Checked as the request is read, before `item_reference`s are replaced with the
        stored items they name (an InvalidRequest is no ValueError: pydantic lets it by)."""
        for index, item in enumerate(self.input_items()):
            _refuse_unknown_item_fields(item, f"input.{index}")
        return self

    @property
    def wants_logprobs(self) -> bool:
        return LOGPROBS_INCLUDE in (self.include or [])

    def to_chat_request(self, earlier: list[dict[str, Any]] | None = None) -> ChatRequest:
        """The same request as a chat completion, `earlier` (a stored conversation's items)
        before `input`; a 400 naming the field for what cannot be."""
        _refuse_unsupported(self)
        options = self.stream_options
        messages = self._messages(earlier or [])
        fields: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump(exclude_none=True) for m in messages],
            # OpenAI's reasoning models refuse max_tokens; local models read either
            "max_completion_tokens": self.max_output_tokens,
            "logprobs": True if self.wants_logprobs else None,  # unsent, as the client's
            # alternatives are asked for with logprobs only (as chat checks it)
            "top_logprobs": self.top_logprobs if self.wants_logprobs else None,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stream": self.stream,
            # checked as chat checks it: only with `stream`
            "stream_options": None if options is None else options.model_dump(exclude_none=True),
            "service_tier": self.service_tier,
            "parallel_tool_calls": self.parallel_tool_calls,
            "metadata": self.metadata,
            "user": self.user,
            "safety_identifier": self.safety_identifier,
            "prompt_cache_key": self.prompt_cache_key,
            "prompt_cache_options": self.prompt_cache_options,
            "prompt_cache_retention": self.prompt_cache_retention,
            "route": self.route,
            "max_strong_share": self.max_strong_share,
            "min_quality": self.min_quality,
            "privacy": self.privacy,
            "rag": self.rag,
        }
        if self.tools:
            fields["tools"] = [_chat_tool(tool, i) for i, tool in enumerate(self.tools)]
        fields["tool_choice"] = self._chat_tool_choice()
        if self.text is not None and self.text.format is not None:
            fields["response_format"] = _response_format(self.text.format)
        if self.text is not None:
            fields["verbosity"] = self.text.verbosity
        try:
            return ChatRequest.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as exc:
            raise validation_error(exc, rename=_in_responses_terms) from None

    def _chat_tool_choice(self) -> str | dict[str, Any] | None:
        choice = self.tool_choice
        if isinstance(choice, NamedFunction):
            return _chat_function(choice)
        if isinstance(choice, AllowedFunctions):
            tools = [_chat_function(tool) for tool in choice.tools]
            return {"type": "allowed_tools", "allowed_tools": {"mode": choice.mode, "tools": tools}}
        return choice

    def input_items(self) -> list[dict[str, Any]]:
        """`input` as items (a text is a user message)."""
        if isinstance(self.input, str):
            return [{"type": "message", "role": "user", "content": self.input}]
        return self.input

    def _messages(self, earlier: list[dict[str, Any]]) -> list[ChatMessage]:
        """The earlier conversation's items, then `input`'s; `instructions` first (a stored
        response's own are not carried over, as OpenAI's are not)."""
        messages = [] if self.instructions is None else [self._system()]
        for item in earlier:
            _append_item(messages, item, "previous_response_id")
        for index, item in enumerate(self.input_items()):
            _append_item(messages, item, f"input.{index}")
        _refuse_duplicate_items([*earlier, *self.input_items()])
        _check_call_outputs([*earlier, *self.input_items()])
        if not messages:
            raise InvalidRequest("input has no messages", param="input")
        return messages

    def _system(self) -> ChatMessage:
        return ChatMessage(role="system", content=self.instructions)


def _chat_function(choice: NamedFunction) -> dict[str, Any]:
    return {"type": "function", "function": {"name": choice.name}}


def _refuse_unsupported(request: ResponsesRequest) -> None:
    for field, why in STORED_STATE.items():
        if getattr(request, field) is not None:
            raise InvalidRequest(f"{field} is not supported: this gateway {why}", param=field)
    if request.background:
        raise InvalidRequest(
            "background responses are not supported: each answer here comes in the request"
            " that asks for it; leave background unset or false",
            param="background",
        )
    if any(value is not None for value in (request.reasoning or {}).values()):
        raise InvalidRequest("reasoning settings are not supported here", param="reasoning")
    unsupported = [item for item in request.include or [] if item not in INCLUDABLE]
    if unsupported:
        raise InvalidRequest(
            f"include {unsupported} is not supported (only {sorted(INCLUDABLE)} are)",
            param="include",
        )


def _refuse_unknown_item_fields(item: dict[str, Any], where: str) -> None:
    """An input item's fields, and its content parts', beside those OpenAI's API has: a 400
    naming the first, as for any unknown field (OpenAI refuses it; here it would be dropped).
    Items and parts of kinds not read here are refused as such where they are read."""
    kind = item.get("type", "message")
    known = ITEM_FIELDS.get(kind) if isinstance(kind, str) else None
    if known is None:
        return
    _refuse_unknown_fields(item, known, where)
    parts_field = PARTS_FIELD.get(kind)
    parts = item.get(parts_field) if parts_field is not None else None
    for index, part in enumerate(parts if isinstance(parts, list) else []):
        part_kind = part.get("type") if isinstance(part, dict) else None
        if isinstance(part_kind, str) and part_kind in PART_FIELDS:
            _refuse_unknown_fields(part, PART_FIELDS[part_kind], f"{where}.{parts_field}.{index}")


def _refuse_unknown_fields(given: dict[str, Any], known: frozenset[str], where: str) -> None:
    unknown = next((key for key in given if key not in known), None)
    if unknown is not None:
        raise unknown_field(f"{where}.{unknown}")


def _append_item(messages: list[ChatMessage], item: dict[str, Any], where: str) -> None:
    """One input item onto the chat messages (function calls join the assistant turn)."""
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise InvalidRequest(
                f"{where}: role {json.dumps(role)} is not a message role (user, system,"
                " developer or assistant)",
                param=f"{where}.role",
            )
        # an assistant's refusal (as this gateway's answers carry an upstream's): chat's field
        refusals: list[str] | None = [] if role == "assistant" else None
        content = _text_of(item.get("content"), f"{where}.content", refusals)
        refusal = "".join(refusals) if refusals else None
        messages.append(ChatMessage(role=role, content=content, refusal=refusal))
    elif kind == "function_call":
        call = ToolCall(
            id=_required(item, "call_id", where),
            function=FunctionCall(
                name=_required(item, "name", where), arguments=_arguments(item, where)
            ),
        )
        last = messages[-1] if messages else None
        if last is not None and last.role == "assistant":
            last.tool_calls = [*(last.tool_calls or []), call]
        else:
            messages.append(ChatMessage(role="assistant", tool_calls=[call]))
    elif kind == "function_call_output":
        output = item.get("output")
        if output is None:
            raise InvalidRequest(f"{where}: output is required", param=f"{where}.output")
        text = output if isinstance(output, str) else _text_of(output, f"{where}.output")
        messages.append(
            ChatMessage(role="tool", tool_call_id=_required(item, "call_id", where), content=text)
        )
    else:
        raise InvalidRequest(
            f"{where}: input items of type {kind!r} are not supported (message, function_call,"
            " function_call_output and item_reference are)",
            param=where,
        )


def _refuse_duplicate_items(items: list[dict[str, Any]]) -> None:
    """OpenAI's rule, in its words: an item is in the conversation once (a client that sends
    back the output of the response `previous_response_id` names, which that one holds
    already, would have the model read it twice)."""
    seen: set[str] = set()
    for item in items:
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            continue
        if item_id in seen:
            raise InvalidRequest(
                f"Duplicate item found with id {item_id}. Remove duplicate items from your"
                " input and try again.",
                param="input",
            )
        seen.add(item_id)


def _check_call_outputs(items: list[dict[str, Any]]) -> None:
    """OpenAI's rules, in its words: an output answers a call made before it, and a turn's
    calls have their outputs before the conversation goes on (a local model would read a
    result that answers nothing; the chat request made from it needs them so)."""
    called: set[str] = set()
    answered: set[str] = set()
    waiting: list[str] = []  # the current turn's calls without their output yet
    for item in items:
        kind = item.get("type", "message")
        if kind == "function_call":
            if item["call_id"] in called:  # which call would an output answer?
                raise InvalidRequest(f"Duplicate 'call_id': {item['call_id']}.", param="input")
            called.add(item["call_id"])
            waiting.append(item["call_id"])
        elif kind == "function_call_output":
            if item["call_id"] not in called:
                raise InvalidRequest(
                    f"No tool call found for function call output with call_id {item['call_id']}.",
                    param="input",
                )
            if item["call_id"] in answered:
                raise InvalidRequest(
                    f"Duplicate function_call_output for call_id {item['call_id']}.",
                    param="input",
                )
            answered.add(item["call_id"])
            if item["call_id"] in waiting:
                waiting.remove(item["call_id"])
        elif waiting:  # a message: the conversation goes on
            break
    if waiting:
        raise InvalidRequest(f"No tool output found for function call {waiting[0]}.", param="input")


def _arguments(item: dict[str, Any], where: str) -> str:
    arguments = item.get("arguments")
    if arguments is None or arguments == "":
        return "{}"
    if not isinstance(arguments, str):  # OpenAI's: the call's arguments as a JSON text
        raise InvalidRequest(
            f"Invalid type for '{where}.arguments': expected a string (the arguments as"
            " JSON text), but got another JSON type instead.",
            param=f"{where}.arguments",
        )
    return arguments


def _text_of(
    content: Any, where: str, refusals: list[str] | None = None
) -> str | list[TextPart] | None:
    """A message's content, or a function call's output, at `where` ("input.2.content"): its
    text, or its text parts (kept apart: the privacy guard reads each on its own, and an
    upstream gets them as parts, a prompt-cache hint with its part); None when it has only
    refusal parts, which go to `refusals` where they may be (an assistant's message). An
    error names the part as the client numbered it."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: must be text or a list of parts", param=where)
    if not content:
        raise InvalidRequest(f"{where}: an empty array; it needs at least one part", param=where)
    text_parts: list[TextPart] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str):
            raise InvalidRequest(
                f"{where}.{index}: each content part needs a type", param=f"{where}.{index}.type"
            )
        if kind == "refusal" and refusals is not None:
            refusals.append(_part_text(part, "refusal", f"{where}.{index}"))
            continue
        if kind not in TEXT_PART_TYPES:
            raise InvalidRequest(
                f"{where}.{index}: content parts of type {kind!r} are not supported: the"
                " models here read text only",
                param=f"{where}.{index}.type",
            )
        text_parts.append(_text_part(part, f"{where}.{index}"))
    if not text_parts:
        return None
    if len(text_parts) == 1 and text_parts[0].prompt_cache_breakpoint is None:
        return text_parts[0].text
    return text_parts


def _text_part(part: dict[str, Any], where: str) -> TextPart:
    """A text part as chat's, with its prompt-cache hint (for a remote tier, as chat's)."""
    text = _part_text(part, "text", where)
    hint = part.get("prompt_cache_breakpoint")
    try:
        return TextPart.model_validate(
            {"type": "text", "text": text, "prompt_cache_breakpoint": hint}
        )
    except ValidationError as exc:
        raise validation_error(exc, within=where) from None


def _part_text(part: dict[str, Any], key: str, where: str) -> str:
    text = part.get(key)
    if not isinstance(text, str):
        raise InvalidRequest(
            f"{where}: a part of type {part['type']!r} needs its {key}", param=f"{where}.{key}"
        )
    return text


def _required(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{where}: {key} is required", param=f"{where}.{key}")
    return value


def _chat_tool(tool: dict[str, Any], index: int) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise InvalidRequest(
            f"tools.{index}: tools of type {tool.get('type')!r} are not supported (function "
            "tools are)",
            param=f"tools.{index}",
        )
    try:
        function = FunctionTool.model_validate(tool)
    except ValidationError as exc:
        raise validation_error(exc, within=f"tools.{index}") from None
    return {
        "type": "function",
        "function": function.model_dump(exclude={"type"}, exclude_none=True),
    }


def responses_param(param: str) -> str:
    """A chat request's `param` ("messages", "response_format.json_schema.schema") as the
    Responses request it was made from names it ("input", "text.format.schema")."""
    path: list[str | int] = [int(p) if p.isdigit() else p for p in param.split(".")]
    return ".".join(str(p) for p in _in_responses_terms(path))


def _in_responses_terms(path: list[str | int]) -> list[str | int]:
    """Where a field of the chat request made from a Responses request came from."""
    head, *rest = path
    if head == "messages":  # input items and messages are not numbered alike
        return ["input"]
    if head == "response_format":  # text.format is the chat's json_schema, flattened
        return (
            ["text", "format", *rest[1:]]
            if rest[:1] == ["json_schema"]
            else ["text", "format", *rest]
        )
    if head == "tools" and rest[1:2] == ["function"]:
        return ["tools", rest[0], *rest[2:]]
    if head == "tool_choice" and rest[:1] == ["allowed_tools"]:  # flat here too
        return ["tool_choice", *rest[1:]]
    return [_RESPONSES_NAMES.get(str(head), head), *rest]


_RESPONSES_NAMES = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}


def _response_format(text_format: TextFormat) -> dict[str, Any]:
    if text_format.type != "json_schema":
        return {"type": text_format.type}
    spec: dict[str, Any] = {"name": text_format.name or FORMAT_NAME, "schema": text_format.schema_}
    if text_format.description is not None:
        spec["description"] = text_format.description
    if text_format.strict is not None:
        spec["strict"] = text_format.strict
    return {"type": "json_schema", "json_schema": spec}
