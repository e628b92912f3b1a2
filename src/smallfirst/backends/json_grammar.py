"""JSON Schemas as llama.cpp grammars (GBNF), on llama-cpp-python's converter with fixes.

- A string holds no raw control character: the converter's `char ::= [^"\\] | ...` let a
  model write a line break inside a string (Qwen2.5-Coder did, in a poem), which is no JSON
  (`json.loads`: "Invalid control character"). Strings now exclude 0x00-0x1F and 0x7F, as
  llama.cpp's own converter and `JSON_GBNF` do; a `pattern`'s `.` likewise.
- A literal's backslash is escaped: the converter escaped quotes and line breaks only, so a
  JSON value holding a quote (an enum `12" pizza` is the JSON text `"12\\" pizza"`) made a
  grammar llama.cpp could not parse (and a failed grammar in a sampler chain crashed the
  whole process: `llamacpp_sampling.py` now refuses one).
- A tool call's `arguments` schema keeps its own `$ref`s: nested in the call's schema, a
  `#/$defs/Unit` (pydantic writes one for every enum or nested model) pointed at the call
  schema, which has no `$defs`. Each schema's references are resolved against itself, all of
  them (the converter skipped a `$ref`'s siblings: a recursive `$defs` entry failed), and each
  reference is its own rule (the converter took any rule of the same last name: a second
  tool's `#/$defs/Unit` was the first tool's).
- An `enum` is a trie: `"\"v" ("1" ... | "2" ...)`, not one alternative per value. llama.cpp
  matches every alternative still open at each token: 20,000 values took 24 s for five
  tokens, 1,000 took 0.35 s a token.
- A `pattern`'s escapes and negated classes are rewritten for the JSON text first
  (`grammar_pattern.py`: `\\d` was the literal text "\\d").
- A schema with no keyword to build from (`{"title": "X"}`, pydantic's `Any`), `true`, and
  `items: {}` are any JSON value (the converter raised on them).
- An `enum` beside a type list (`["string", "null"]`) is the enum (the converter built the
  type list: any string went), and `anyOf`/`oneOf` beside other keywords (an object's
  `properties` with branches of `required` lists) is branches that each hold them (the
  branches were read alone: any JSON value went).

- An integer's bounds (`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`), and a
  number's whole inclusive ones, are kept (`number_range.py`; the converter ignored them: a
  rating from 1 to 5 could be 42). A type list keeps the keywords beside it (`["integer",
  "null"]` with a `minimum`, `["string", "null"]` with a `maxLength`): the converter built
  the bare types.

`schema_check.py` refuses, with a reason, what is still beyond the converter. Not enforced: a
number's bounds that are fractions or exclusive, and `multipleOf`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from typing import Any

from smallfirst.backends.grammar_pattern import grammar_pattern
from smallfirst.backends.number_range import (
    Spelling,
    as_gbnf,
    decimal_spellings,
    fitting_types,
    has_bounds,
    integer_bounds,
    spellings,
    whole_bounds,
)
from smallfirst.backends.schema_check import is_untyped, pointed, with_context

_LITERAL_ESCAPES = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", '"': '\\"'}
_LITERAL_ESCAPE = re.compile(r'[\\\r\n"]')
# A character of a JSON string, as llama.cpp's json-schema-to-grammar writes it.
JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
# A pattern's "." (any character but a line break), written as JSON string content.
JSON_DOT = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfrt] | "u" [0-9a-fA-F]{4})'
ANY_VALUE = {"type": ["object", "array", "string", "number", "boolean", "null"]}
_PENDING = "<being built>"  # a reference's rule name, taken before its schema is visited
_END = ""  # in an enum's trie: a value ends here


def json_grammar(
    calls: list[tuple[str, dict[str, Any]]],
    answer: dict[str, Any] | None,
    *,
    several: bool = False,
) -> str:
    """GBNF whose root is a call `{"name": NAME, "arguments": ...}` to one of `calls` (name,
    parameters schema), or (`several`) a JSON array of such calls, or an `answer` that fits its
    schema. Raises ValueError (or the converter's own plain exceptions) for a schema it cannot
    express: check schemas first (`schema_check.check_schema`) for a reason to give."""
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
    from llama_cpp.llama_grammar import DOT, PRIMITIVE_RULES, RESERVED_NAMES, SchemaConverter

    json_rules = {("char", PRIMITIVE_RULES["char"].content): JSON_CHAR, ("dot", DOT): JSON_DOT}

    class Converter(SchemaConverter):
        def __init__(self, **options: Any) -> None:
            parent: Any = super()  # llama-cpp-python's converter has no type hints
            parent.__init__(**options)
            self._ref_rules: dict[str, str] = {}

        def _format_literal(self, literal: str) -> str:
            escaped = _LITERAL_ESCAPE.sub(lambda match: _LITERAL_ESCAPES[match.group()], literal)
            return f'"{escaped}"'

        def _visit_pattern(self, pattern: str, name: str) -> str:
            parent: Any = super()
            rule: str = parent._visit_pattern(grammar_pattern(pattern), name)
            return rule

        def _add_rule(self, name: str, rule: str) -> str:
            parent: Any = super()
            key: str = parent._add_rule(name, json_rules.get((name, rule), rule))
            return key

        def visit(self, schema: Any, name: str) -> str:
            if schema is True or (isinstance(schema, dict) and is_untyped(schema)):
                schema = ANY_VALUE
            elif (
                isinstance(schema, dict)
                and schema.get("items") == {}
                and "prefixItems" not in schema
            ):
                schema = {**schema, "items": ANY_VALUE}
            schema = _types_with_their_keywords(with_context(schema))
            rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
            if _is_enum(schema):
                return self._enum_rule(schema["enum"], rule_name)
            spelled = _bounded_number(schema)
            if spelled is not None:
                return self._add_rule(rule_name, f"{as_gbnf(spelled)} space")
            parent: Any = super()
            rule: str = parent.visit(schema, name)
            return rule

        def resolve_refs(self, schema: Any, url: str) -> Any:
            """Every local `$ref` ("#/$defs/Unit", "#"), as `url#...`, with its target. One
            that points at nothing is left out: the grammar is built from the schemas that
            `check_schema` walked, whose references it found, and such a reference elsewhere
            (in an unused `$defs` entry, under `not`) was the converter's LookupError."""
            stack = [schema]
            while stack:
                node = stack.pop()
                if isinstance(node, list):
                    stack.extend(node)
                elif isinstance(node, dict):
                    ref = node.get("$ref")
                    if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
                        with contextlib.suppress(LookupError):
                            target = pointed(schema, ref)
                            node["$ref"] = f"{url}{ref}"
                            self._refs[node["$ref"]] = target
                    stack.extend(node.values())
            return schema

        def _resolve_ref(self, ref: str) -> str:
            """The rule for a reference, named before its schema is visited, so that the
            schema may refer to itself (through an object or an array)."""
            name = self._ref_rules.get(ref)
            if name is None:
                name = self._add_rule(ref.split("/")[-1], _PENDING)
                self._ref_rules[ref] = name
                self._rules[name] = self.visit(self._refs[ref], f"{name}-def")
            return name

        def _enum_rule(self, values: list[Any], name: str) -> str:
            trie: dict[str, Any] = {}
            for text in dict.fromkeys(json.dumps(value) for value in values):
                node = trie
                for char in text:
                    node = node.setdefault(char, {})
                node[_END] = {}
            return self._trie_rules(trie, name)

        def _trie_rules(self, trie: dict[str, Any], name: str) -> str:
            """A rule for each node where values part: one edge per run of characters they
            share. Built without recursion: a trie may be as deep as its longest value."""
            order: list[tuple[dict[str, Any], str, list[tuple[str, dict[str, Any]]]]] = []
            stack = [(trie, name)]
            while stack:
                node, node_name = stack.pop()
                edges = []
                for char, child in node.items():
                    if char == _END:
                        continue
                    label = char
                    while len(child) == 1 and _END not in child:
                        ((next_char, child),) = child.items()
                        label += next_char
                    edges.append((label, child))
                    if set(child) != {_END}:
                        stack.append((child, f"{name}-{len(order) + len(stack) + 1}"))
                order.append((node, node_name, edges))
            rules: dict[int, str] = {}
            for node, node_name, edges in reversed(order):
                alternatives = [
                    self._format_literal(label)
                    if set(child) == {_END}
                    else f"{self._format_literal(label)} {rules[id(child)]}"
                    + ("?" if _END in child else "")
                    for label, child in edges
                ]
                rules[id(node)] = self._add_rule(node_name, " | ".join(alternatives))
            return rules[id(trie)]

    untyped: Any = Converter  # llama-cpp-python's converter has no type hints
    converter = untyped(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    if indented:
        # Calls may be pretty-printed, by llama.cpp's own rule (bounded indents: no runaway
        # whitespace): with llama-cpp-python's one space, Qwen2.5-Coder could not write its
        # calls, indented in an array. Answers stay compact: fewer tokens to a max_tokens.
        converter._rules["space"] = _INDENTED
    return converter


# Keywords that choose among values before `type` is read.
_CHOOSERS = {"$ref", "oneOf", "anyOf", "const", "enum"}


def _types_with_their_keywords(schema: Any) -> Any:
    """A type list (`["integer", "null"]`) as one branch per type, each with the schema's
    other keywords: the converter built bare types, so `minimum`, `maxLength` or a
    `pattern` beside a type list were dropped."""
    if not isinstance(schema, dict) or _CHOOSERS & schema.keys():
        return schema
    kinds = schema.get("type")
    if not isinstance(kinds, list):
        return schema
    return {"anyOf": [{**schema, "type": kind} for kind in fitting_types(kinds, schema)]}


def _bounded_number(schema: Any) -> list[Spelling] | None:
    """The texts an integer or number within bounds may have (None: no bounds to spell)."""
    if not isinstance(schema, dict) or _CHOOSERS & schema.keys() or not has_bounds(schema):
        return None
    if schema.get("type") == "integer":
        return spellings(*integer_bounds(schema))
    whole = whole_bounds(schema) if schema.get("type") == "number" else None
    return None if whole is None else decimal_spellings(*whole)


def _is_enum(schema: Any) -> bool:
    """Is `schema` its `enum`? Beside a type list too (`["string", "null"]`): the converter
    built the type list and dropped the enum, so any string went."""
    return (
        isinstance(schema, dict)
        and isinstance(schema.get("enum"), list)
        and bool(schema["enum"])
        and not ({"$ref", "oneOf", "anyOf", "const"} & schema.keys())
    )
