"""Schemas a local grammar cannot express, or that are over its limits, are 400s that say
where in the schema and why (`backends/schema_check.py`), never the converter's Python
exception; and schemas it can express since are built (`backends/json_grammar.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from smallfirst.backends.llamacpp_sampling import grammar_for
from smallfirst.backends.schema_check import (
    MAX_ALTERNATIVES,
    MAX_DEPTH,
    MAX_ENUM_VALUES,
    MAX_PROPERTIES,
    MAX_TEXT_CHARS,
)
from smallfirst.errors import BeyondLocalGrammar, InvalidRequest
from smallfirst.types import ChatRequest

SCHEMA = "response_format.json_schema.schema"
NODE = {  # a tree: recursive through an array
    "$defs": {
        "node": {
            "type": "object",
            "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            "required": ["kids"],
        }
    },
    "$ref": "#/$defs/node",
}

NESTED: dict[str, Any] = {"type": "integer"}
for _ in range(MAX_DEPTH + 6):
    NESTED = {"type": "array", "items": NESTED}
# 60 required properties to an object (optional ones have a lower limit per object); the
# outer object's count first, then each inner one's: the limit is passed inside one of them
WIDE = {
    f"o{j}": {
        "type": "object",
        "properties": {f"p{i}": {"type": "integer"} for i in range(60)},
        "required": [f"p{i}" for i in range(60)],
    }
    for j in range(MAX_PROPERTIES // 60 + 1)
}


def answer_in(schema: Any) -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema},
            },
        }
    )


def calling(parameters: Any) -> ChatRequest:
    clock = {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    return ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [clock, tool],
            "tool_choice": "required",
        }
    )


def refusal(request: ChatRequest) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as refused:
        grammar_for(request)
    return refused.value


@pytest.mark.parametrize(
    ("schema", "param", "reason"),
    [  # QA's schemas (the converter said "'bool' object has no attribute 'get'" and the like)
        (
            {"type": "object", "properties": {"a": False}, "required": ["a"]},
            f"{SCHEMA}.properties.a",
            "at properties.a: the schema false allows no value",
        ),
        (
            {"type": "object", "properties": [1]},
            f"{SCHEMA}.properties",
            "properties must be an object of names and schemas",
        ),
        ({"type": "string", "minLength": 2.5}, f"{SCHEMA}.minLength", "a whole number"),
        ({"type": "string", "minLength": "2"}, f"{SCHEMA}.minLength", "a whole number"),
        (  # a 287-byte request took the server to 9.7 GB building it
            {"type": "string", "pattern": "^[a]{200000000}$"},
            f"{SCHEMA}.pattern",
            "repeats more than the local grammar supports",
        ),
        (
            {"type": "string", "pattern": "^(" + "[a]{900}" * 12 + ")$"},
            f"{SCHEMA}.pattern",
            "repeats more than the local grammar supports",
        ),
        (  # after an escaped backslash, the brace is a quantifier all the same
            {"type": "string", "pattern": "^\\\\{200000000}$"},
            f"{SCHEMA}.pattern",
            "repeats more than the local grammar supports",
        ),
        ({"$ref": 5}, f"{SCHEMA}.$ref", "only references within the schema"),
        (
            {"$defs": {"a": 5}, "$ref": "#/$defs/a"},
            f"{SCHEMA}.$defs.a",
            "a schema must be a JSON object, not an integer",
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/definitions/zz"}}},
            f"{SCHEMA}.properties.a.$ref",
            '$ref "#/definitions/zz" points at nothing in this schema',
        ),
        (
            {"type": "object", "properties": {"a": {"type": "banana"}}},
            f"{SCHEMA}.properties.a.type",
            '"banana" is not a JSON Schema type',
        ),
        (
            {"anyOf": [{"$ref": "#"}, {"type": "integer"}]},
            f"{SCHEMA}.anyOf.0.$ref",
            "left recursion",
        ),
        ({"enum": []}, f"{SCHEMA}.enum", "enum must be a non-empty array"),
        ({"type": "string", "pattern": "^(?=a)$"}, f"{SCHEMA}.pattern", "syntax"),
        (
            {"type": "integer", "minimum": 5, "maximum": 1},
            f"{SCHEMA}.minimum",
            "no integer fits the bounds (minimum 5, maximum 1)",
        ),
        (
            {"type": "number", "minimum": 1.5, "maximum": 0.5},
            f"{SCHEMA}.minimum",
            "no number fits the bounds (minimum 1.5, maximum 0.5)",
        ),
        (  # keywords beside anyOf are checked in each branch, as the grammar is built
            {"type": "integer", "anyOf": [{"minimum": 5, "maximum": 1}, {"maximum": 9}]},
            f"{SCHEMA}.anyOf.0.minimum",
            "no integer fits the bounds (minimum 5, maximum 1)",
        ),
        (  # beside a type list, bounds are read as they are beside a type
            {"type": ["integer", "null"], "maximum": "9"},
            f"{SCHEMA}.maximum",
            "maximum must be a number",
        ),
        # over the limits: llama.cpp refused these, or took seconds a token
        ({"type": ["string", "null"], "maxLength": 5000}, f"{SCHEMA}.maxLength", "above 1000"),
        ({"type": "string", "maxLength": 5000}, f"{SCHEMA}.maxLength", "above 1000"),
        (
            {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(101)}},
            f"{SCHEMA}.properties",
            "at most 100 optional properties",
        ),
        (
            {"enum": [f"v{i}" for i in range(20_000)]},
            f"{SCHEMA}.enum",
            f"more than {MAX_ENUM_VALUES:,} enum values",
        ),
        (
            {"enum": [f"{i:03d}" + "x" * 60 for i in range(300)]},
            f"{SCHEMA}.enum",
            "an enum of more than 250 values may have at most 15,000 characters",
        ),
        (NESTED, f"{SCHEMA}" + ".items" * (MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} deep"),
        (
            {"anyOf": [{"const": i} for i in range(MAX_ALTERNATIVES + 1)]},
            f"{SCHEMA}.anyOf",
            f"more than {MAX_ALTERNATIVES} anyOf/oneOf branches in all",
        ),
        (
            {"type": "object", "properties": {"a": {"const": "x" * MAX_TEXT_CHARS}}},
            f"{SCHEMA}.properties.a.const",
            f"more than {MAX_TEXT_CHARS:,} characters in all",
        ),
        (
            {"type": "object", "properties": WIDE, "required": list(WIDE)},
            f"{SCHEMA}.properties.o{(MAX_PROPERTIES - len(WIDE)) // 60}.properties",
            f"more than {MAX_PROPERTIES:,} properties in all",
        ),
        # malformed keywords are refused where they are, not met by the converter
        ({"anyOf": {"type": "integer"}}, f"{SCHEMA}.anyOf", "must be a non-empty array"),
        ({"type": ["integer", "banana"]}, f"{SCHEMA}.type.1", '"banana" is not a JSON Schema'),
        ({"type": "object", "properties": {}, "required": "a"}, f"{SCHEMA}.required", "names"),
        (
            {"type": "object", "additionalProperties": 5},
            f"{SCHEMA}.additionalProperties",
            "additionalProperties must be true, false or a schema",
        ),
        ({"allOf": [{"anyOf": {}}]}, f"{SCHEMA}.allOf.0.anyOf", "must be a non-empty array"),
        ({"allOf": [5]}, f"{SCHEMA}.allOf.0", "a schema must be an object, not an integer"),
        (
            {
                "$defs": {"A": {"properties": {"a": {"type": "banana"}}}},
                "allOf": [{"$ref": "#/$defs/A"}],
            },
            f"{SCHEMA}.$defs.A.properties.a.type",
            '"banana" is not a JSON Schema type',
        ),
        ({"type": "array", "prefixItems": []}, f"{SCHEMA}.prefixItems", "non-empty array"),
        (
            {"type": "array", "prefixItems": [{"type": "banana"}]},
            f"{SCHEMA}.prefixItems.0.type",
            '"banana" is not a JSON Schema type',
        ),
        (
            {"type": "array", "items": {}, "minItems": 3, "maxItems": 2},
            f"{SCHEMA}.minItems",
            "minItems is more than maxItems: no array fits",
        ),
        (
            {"$defs": {"l": [{"type": "integer"}]}, "$ref": "#/$defs/l/3"},
            f"{SCHEMA}.$ref",
            '$ref "#/$defs/l/3" points at nothing in this schema',
        ),
    ],
)
def test_a_schema_the_grammar_cannot_express_is_refused_where_it_fails(
    schema: Any, param: str, reason: str
) -> None:
    refused = refusal(answer_in(schema))
    assert refused.param == param
    assert refused.message.startswith("Invalid schema for response_format 'x'")
    assert reason in refused.message
    for python in ("object has no attribute", "{'", "Error", "'list'", "sequence"):
        assert python not in refused.message


def test_a_tools_schema_is_refused_with_its_place_in_the_body() -> None:
    refused = refusal(calling({"type": "object", "properties": {"a": {"type": "banana"}}}))
    assert refused.param == "tools.1.function.parameters.properties.a.type"
    assert refused.message.startswith("Invalid schema for function 'f' at properties.a.type:")


@pytest.mark.parametrize(
    "schema",
    [
        NODE,  # was "unsupported json_schema: '#/$defs/node'"
        {"type": "object", "properties": {"any": {"title": "Any"}}},  # pydantic's Any
        {"type": "array", "items": {}},  # pydantic's list[Any]
        {"type": "object", "properties": {"a": True}},
        {"enum": [f"v{i}" for i in range(MAX_ENUM_VALUES)]},
        {"type": ["integer", "null"], "minimum": 0.2, "maximum": 0.8},  # null fits
        {"type": "number", "minimum": -1.7976931348623157e308, "maximum": 1.7976931348623157e308},
    ],
)
def test_schemas_the_converter_raised_on_make_grammars(schema: Any) -> None:
    assert grammar_for(answer_in(schema))


def test_an_enum_is_written_as_a_trie_not_an_alternative_per_value() -> None:
    """llama.cpp matches each open alternative at every token: 20,000 values took 24 s for
    five tokens; as a trie, 0.06 s."""
    grammar = grammar_for(answer_in({"enum": [f"v{i}" for i in range(MAX_ENUM_VALUES)]}))
    assert grammar is not None
    widest = max(rule.count(" | ") + 1 for rule in grammar.splitlines())
    assert widest <= 11  # a digit or the value's end


def test_a_schema_beyond_the_grammar_is_the_local_models_limit() -> None:
    """Not a wrong request: `auto` sends it to a model that takes it (`service.py`)."""
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": r"\b"}}}
    assert isinstance(refusal(answer_in(schema)), BeyondLocalGrammar)
