"""JSON Schemas as llama.cpp grammars (GBNF), on llama-cpp-python's converter with two fixes.

- A literal's backslash is escaped: the converter escaped quotes and line breaks only, so a
  JSON value holding a quote (an enum `12" pizza` is the JSON text `"12\\" pizza"`) made a
  grammar llama.cpp could not parse (and a failed grammar in a sampler chain crashed the
  whole process: `llamacpp_sampling.py` now refuses one).
- A tool call's `arguments` schema keeps its own `$ref`s: nested in the call's schema, a
  `#/$defs/Unit` (pydantic writes one for every enum or nested model) pointed at the call
  schema, which has no `$defs`. Each schema's references are resolved against itself.
"""

from __future__ import annotations

import copy
import re
from typing import Any

_LITERAL_ESCAPES = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", '"': '\\"'}
_LITERAL_ESCAPE = re.compile(r'[\\\r\n"]')


def json_grammar(
    calls: list[tuple[str, dict[str, Any]]],
    answer: dict[str, Any] | None,
    *,
    several: bool = False,
) -> str:
    """GBNF whose root is a call `{"name": NAME, "arguments": ...}` to one of `calls` (name,
    parameters schema), or (`several`) a JSON array of such calls, or an `answer` that fits its
    schema. Raises ValueError (or the converter's own plain exceptions) for a schema it cannot
    express."""
    converter = _converter(indented=bool(calls))
    alternatives = [
        _call_schema(name, converter.resolve_refs(copy.deepcopy(parameters), f"tool{i}"))
        for i, (name, parameters) in enumerate(calls)
    ]
    if several and alternatives:
        one_of_them = alternatives[0] if len(alternatives) == 1 else {"anyOf": [*alternatives]}
        alternatives.append({"type": "array", "items": one_of_them, "minItems": 1})
    if answer is not None:
        alternatives.append(converter.resolve_refs(copy.deepcopy(answer), "answer"))
    if not alternatives:
        raise ValueError("nothing to constrain the answer to")
    converter.visit(alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}, "")
    grammar: str = converter.format_grammar()
    return grammar


_INDENTED = '| " " | "\\n" [ \\t]{0,20}'


def _call_schema(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _converter(*, indented: bool) -> Any:
    from llama_cpp.llama_grammar import SchemaConverter

    class Converter(SchemaConverter):
        def _format_literal(self, literal: str) -> str:
            escaped = _LITERAL_ESCAPE.sub(lambda match: _LITERAL_ESCAPES[match.group()], literal)
            return f'"{escaped}"'

    untyped: Any = Converter  # llama-cpp-python's converter has no type hints
    converter = untyped(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    if indented:
        # Calls may be pretty-printed, by llama.cpp's own rule (bounded indents: no runaway
        # whitespace): with llama-cpp-python's one space, Qwen2.5-Coder could not write its
        # calls, indented in an array. Answers stay compact: fewer tokens to a max_tokens.
        converter._rules["space"] = _INDENTED
    return converter
