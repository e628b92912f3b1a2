"""Tool calls on a local GGUF model: prompt the tools, constrain the output, parse the call.

A chat template from a GGUF file may or may not know about tools, so this does not rely on
one: the tools are described in a system message, earlier calls and tool results are written
into the conversation as text, and a grammar built from the tools' JSON schemas makes the
model's answer either a call `{"name": ..., "arguments": {...}}` that fits a declared tool
(`tool_choice` "required" or a named tool: nothing else is possible) or, under "auto", plain
prose that does not begin as a call does. The engine generates as for any request;
`StreamedCalls` sends an answer that is calls as OpenAI streams them while it is written, and
`as_tool_call` turns a finished answer that is calls into OpenAI's shape; either way a call cut
off by `max_tokens` is a call with the arguments written so far (`call_reader.py`).

Off by default (`tools: true` on a local model turns it on): a 135M model fills arguments
poorly, and `model: auto` would otherwise send every tool request to it first.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from smallfirst.backends.call_reader import CallReader, WrittenCall
from smallfirst.backends.json_grammar import json_grammar
from smallfirst.backends.prose_grammar import prose_grammar
from smallfirst.completions import Completion, ToolCallDelta
from smallfirst.request_options import NamedToolChoice, Tool
from smallfirst.surrogates import escaped_surrogates
from smallfirst.types import ChatMessage, ChatRequest, FunctionCall, ToolCall

_INSTRUCTIONS = (
    "You can call tools. To call one, answer with only a JSON object of the form "
    '{"name": <tool name>, "arguments": {<arguments>}} and nothing else. '
)
_SEVERAL = "To call several at once, answer with only a JSON array of such objects. "
_OTHERWISE = "Otherwise answer normally. "
_OTHERWISE_JSON = "Otherwise answer with only a JSON value that fits this schema: {schema}. "
_TOOLS = "The tools:\n"
_ANSWER_FROM_RESULTS = "\n\nAnswer the user from these results."
# Under tool_choice "auto" an answer is a call (or several), bare or fenced as a JSON code
# block (Qwen2.5-Coder writes its calls so: forbidden, it wrote "```json\n([" and pseudo-code
# instead), or prose. Prose may begin with "{" or "[" (forbidden, a model asked for a
# package.json made up a tool call), but not as a call to an offered tool does
# (`prose_grammar.py`): from there the call's grammar holds, arguments and all.
_AUTO_ROOT = 'root ::= call | "```" "json"? "\\n" call "\\n```" | prose\n'
# How calls begin, as JSON tokens (any whitespace between them): bare, in an array, fenced.
_CALL_HEADS = (
    ("{",),
    ("[", "{"),
    ("```json", "{"),
    ("```json", "[", "{"),
    ("```", "{"),
    ("```", "[", "{"),
)
# How an answer that is a call begins (the fenced forms as the grammar allows them).
CALL_STARTS = ("{", "[", "```json\n{", "```json\n[", "```\n{", "```\n[")
# What `may_be_a_call` reads of an answer: no more than its longest call start.
TELLING_CHARS = max(len(start) for start in CALL_STARTS)
_FENCED = re.compile(r"```(?:json)?\n(.*)\n```", re.DOTALL)


def offered_tools(request: ChatRequest) -> list[Tool]:
    """The tools the answer may call: the named one, or all (none when switched off)."""
    if not request.wants_tools or not request.tools:
        return []
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        return [t for t in request.tools if t.function.name == choice.function.name]
    return list(request.tools)


def several_calls(request: ChatRequest) -> bool:
    """May the answer call several tools at once (OpenAI's `parallel_tool_calls`)? Not when
    one named tool is to be called."""
    named = isinstance(request.tool_choice, NamedToolChoice)
    return request.parallel_tool_calls is not False and not named


def prompt_messages(request: ChatRequest) -> list[dict[str, str]]:
    """The conversation as plain role/content turns any chat template can render."""
    tools = offered_tools(request)
    turns = _turns(request.messages)
    if not tools:
        return turns
    described = "\n".join(json.dumps(_description(tool)) for tool in tools)
    answer = answer_schema(request) if request.tool_choice in ("auto", None) else None
    otherwise = _OTHERWISE if answer is None else _OTHERWISE_JSON.format(schema=json.dumps(answer))
    several = _SEVERAL if several_calls(request) else ""
    system = _INSTRUCTIONS + several + otherwise + _TOOLS + described
    if turns and turns[0]["role"] == "system":
        return [{"role": "system", "content": turns[0]["content"] + "\n\n" + system}, *turns[1:]]
    return [{"role": "system", "content": system}, *turns]


def grammar_text(request: ChatRequest) -> str | None:
    """GBNF for the answer: a call to one of the offered tools, or (under "auto") an answer
    in the requested `response_format`, else prose. None when no tool is offered."""
    tools = offered_tools(request)
    if not tools:
        return None
    calls = [(tool.function.name, tool.function.parameters or {"type": "object"}) for tool in tools]
    several = several_calls(request)
    if request.tool_choice not in ("auto", None):
        return json_grammar(calls, None, several=several)
    answer = answer_schema(request)
    if answer is not None:  # OpenAI's: an answer that is no call still keeps the format
        return json_grammar(calls, answer, several=several)
    call_rules = json_grammar(calls, None, several=several).replace("root ::=", "call ::=", 1)
    beginnings = [(*head, '"name"', ":", f'"{name}"') for head in _CALL_HEADS for name, _ in calls]
    return _AUTO_ROOT + prose_grammar(beginnings) + call_rules


def may_be_a_call(begun: str) -> bool:
    """Could an answer that begins so (whitespace stripped) still be a call? While it could,
    a stream holds it; once it cannot, it is prose. Its first `TELLING_CHARS` characters
    tell as much as the whole."""
    return any(begun.startswith(start) or start.startswith(begun) for start in CALL_STARTS)


def answer_schema(request: ChatRequest) -> dict[str, Any] | None:
    """The JSON Schema `response_format` asks the answer to fit, if any."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        return fmt.json_schema.schema_
    return {"type": "object"}


def as_tool_call(request: ChatRequest, answer: Completion) -> Completion:
    """The finished answer as its tool calls if it is a call (or several); otherwise
    unchanged. A call cut off (by `max_tokens`) is a call too, as OpenAI sends one: the
    calls written whole, then the cut one with the arguments written so far (JSON that does
    not parse), and the answer's own finish reason ("length")."""
    names = {tool.function.name for tool in offered_tools(request)}
    text = answer.text.strip()
    if not names or not text.startswith(CALL_STARTS):
        return _cut_calls(request, answer) if names and _forced(request) else answer
    fenced = _FENCED.fullmatch(text)
    try:
        written = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return _cut_calls(request, answer)
    calls = written if isinstance(written, list) and several_calls(request) else [written]
    if not calls or not all(_is_call(call, names) for call in calls):
        return answer  # an answer in the requested JSON format, not a call
    tool_calls = [
        ToolCall(
            id=_call_id(),
            function=FunctionCall(
                name=call["name"],
                # the model may write half a surrogate pair as an escape (the grammar lets
                # any \\uXXXX through): kept as that escape, which UTF-8 can hold
                arguments=escaped_surrogates(json.dumps(call["arguments"], ensure_ascii=False)),
            ),
        )
        for call in calls
    ]
    return answer.model_copy(
        update={"text": "", "tool_calls": tool_calls, "finish_reason": "tool_calls"}
    )


def _cut_calls(request: ChatRequest, answer: Completion) -> Completion:
    """An answer that does not parse: the calls it began, if it is calls (`is_calls`), else
    unchanged. Under a forced tool_choice the answer cannot be anything but calls: cut before
    a call's name is known, it is empty rather than the call's beginning as text."""
    reader = CallReader(several=several_calls(request))
    reader.feed(answer.text)
    if not reader.is_call:
        return answer  # not as the grammar writes calls: what was written, as it was
    if not is_calls(request, reader):
        return answer if not _forced(request) else answer.model_copy(update={"text": ""})
    calls = [
        ToolCall(id=_call_id(), function=FunctionCall(name=name, arguments=call.arguments))
        for call in reader.calls
        if (name := called_name(request, call)) is not None
    ]
    return answer.model_copy(update={"text": "", "tool_calls": calls or None})


def is_calls(request: ChatRequest, reader: CallReader) -> bool:
    """Is an answer begun as `reader` read it calls, whatever follows? Under a forced
    tool_choice, once the grammar leaves one tool for its first call; under "auto", once the
    first call's name is written whole (with its closing quote) and offered: prose may not
    begin so (`prose_grammar.py`), while `{"name": "get_wea` may still be prose."""
    if not reader.is_call or not reader.calls:
        return False
    first = reader.calls[0]
    if not _forced(request) and not first.name_done:
        return False
    return called_name(request, first) is not None


def called_name(request: ChatRequest, call: WrittenCall) -> str | None:
    """The tool a call (of an answer that `is_calls`) calls, once only one is possible: its
    name whole, or a beginning only one offered tool's name has (the grammar writes no other)."""
    names = [tool.function.name for tool in offered_tools(request)]
    if call.name_done:
        return call.name if call.name in names else None
    possible = [name for name in names if name.startswith(call.name)]
    return possible[0] if len(possible) == 1 else None


class StreamedCalls:
    """An answer's calls streamed as OpenAI streams them, as they are written: a call's id and
    name once `called_name` knows it, then the pieces of its arguments. A cut call is sent
    as far as it was written; one cut before its name was known is not sent."""

    def __init__(self, request: ChatRequest) -> None:
        self._request = request
        self.reader = CallReader(several=several_calls(request))
        # Under "auto" with a `response_format`, `{"name": "get_weather", ...` may still be an
        # answer in that format: such an answer is held whole (`as_tool_call`).
        self._early = _forced(request) or answer_schema(request) is None
        self._ids: list[str] = []  # of the calls sent, in order
        self._sent: list[int] = []  # characters of each one's arguments sent

    def feed(self, text: str) -> None:
        self.reader.feed(text)

    @property
    def are_calls(self) -> bool:
        """Can the answer so far be sent as calls?"""
        return self._early and is_calls(self._request, self.reader)

    @property
    def whole(self) -> bool:
        return self.reader.whole and len(self._ids) == len(self.reader.calls)

    def deltas(self) -> list[ToolCallDelta]:
        """What is new since the last time."""
        out: list[ToolCallDelta] = []
        for index, call in enumerate(self.reader.calls):
            if index == len(self._ids):
                name = called_name(self._request, call)
                if name is None:
                    break
                self._ids.append(_call_id())
                self._sent.append(0)
                out.append(ToolCallDelta(index=index, id=self._ids[index], name=name))
            new = call.arguments[self._sent[index] :]
            if new:
                out.append(ToolCallDelta(index=index, arguments=new))
                self._sent[index] = len(call.arguments)
        return out


def _forced(request: ChatRequest) -> bool:
    """Must the answer be calls (tool_choice "required" or a named tool)?"""
    return request.tool_choice not in ("auto", None)


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _is_call(written: Any, names: set[str]) -> bool:
    return (
        isinstance(written, dict)
        and set(written) == {"name", "arguments"}
        and written["name"] in names
    )


def _turns(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """The messages as role/content turns. Many templates know no "tool" role: the results of
    a turn's calls are one user turn (templates that want roles to alternate accept it), each
    result saying which call it answers. Read as "Tool result (call_1): ...", Qwen2.5-Coder
    made the same calls again instead of answering; without `_ANSWER_FROM_RESULTS` it called
    some other tool after 8 of 9 results (benchmarks/local_tool_calls.py)."""
    calls = {call.id: call for message in messages for call in message.tool_calls or []}
    turns: list[dict[str, str]] = []
    results: dict[str, str] | None = None  # the user turn gathering this turn's results
    for message in messages:
        if message.role != "tool":
            results = None
            turns.append(_as_turn(message))
            continue
        line = _result_line(message, calls.get(str(message.tool_call_id)))
        if results is None:
            results = {"role": "user", "content": line}
            turns.append(results)
        else:
            results["content"] += "\n" + line
    if results is not None:  # the conversation ends with results: the model answers next
        results["content"] += _ANSWER_FROM_RESULTS
    return turns


def _result_line(message: ChatMessage, call: ToolCall | None) -> str:
    if call is None:  # not in a validated request: every result answers a call
        return f"Result of call {message.tool_call_id}: {message.text}"
    return f"Result of {call.function.name}({call.function.arguments}): {message.text}"


def _as_turn(message: ChatMessage) -> dict[str, str]:
    # OpenAI's "developer" is its newer name for the system message; templates know "system".
    role = "system" if message.role == "developer" else message.role
    if not message.tool_calls:
        return {"role": role, "content": message.text}
    # The calls as the model was told to write them, an object or an array of several, and
    # nothing else: the text some clients put before calls ("Let me check.") taught the model
    # to write text, then a call, which is prose to the grammar.
    calls = [
        {"name": c.function.name, "arguments": _loaded(c.function.arguments)}
        for c in message.tool_calls
    ]
    return {"role": role, "content": json.dumps(calls[0] if len(calls) == 1 else calls)}


def _description(tool: Tool) -> dict[str, Any]:
    function = tool.function
    described: dict[str, Any] = {"name": function.name}
    if function.description:
        described["description"] = function.description
    described["parameters"] = function.parameters or {"type": "object"}
    return described


def _loaded(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
