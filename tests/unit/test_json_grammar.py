"""The grammars local models answer under (`backends/json_grammar.py`, `local_tools`); that
llama.cpp accepts them is checked with the real model (integration `test_tools_remote.py`)."""

from __future__ import annotations

import pytest

from smallfirst.backends.json_grammar import json_grammar
from smallfirst.backends.local_tools import grammar_text
from smallfirst.backends.schema_check import SchemaProblem, check_schema
from smallfirst.types import ChatRequest
from tests.helpers import WEATHER_WITH_DEFS

ANSWER = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def test_a_quote_in_a_value_is_escaped_with_its_backslash() -> None:
    grammar = json_grammar([], {"anyOf": [{"const": '12" pizza'}, {"const": "a\\b"}]})
    # the JSON texts "12\" pizza" and "a\\b", as GBNF literals
    assert '"\\"12\\\\\\" pizza\\""' in grammar
    assert '"\\"a\\\\\\\\b\\""' in grammar


def test_a_tools_refs_resolve_against_its_own_parameters() -> None:
    parameters = WEATHER_WITH_DEFS["function"]["parameters"]  # type: ignore[index]
    grammar = json_grammar([("get_weather", parameters)], None)
    assert "celsius" in grammar
    assert parameters["properties"]["unit"] == {"$ref": "#/$defs/Unit"}  # not rewritten


def request(**extra: object) -> ChatRequest:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER_WITH_DEFS],
    }
    return ChatRequest.model_validate({**body, **extra})


@pytest.mark.parametrize(
    ("extra", "answers_in_json"),
    [
        ({}, False),  # a call, or prose
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": ANSWER}}}, True),
        ({"response_format": {"type": "json_object"}}, True),
    ],
)
def test_under_auto_an_answer_that_is_no_call_keeps_the_response_format(
    extra: dict[str, object], answers_in_json: bool
) -> None:
    """OpenAI's: with tools offered and a format asked for, the answer is a call or fits
    the format (the format was dropped: any prose could follow)."""
    grammar = grammar_text(request(**extra))
    assert grammar is not None
    assert ("prose" in grammar) is not answers_in_json
    assert '"\\"get_weather\\""' in grammar
    if "json_schema" in str(extra):
        assert '"\\"answer\\""' in grammar


def test_an_enum_beside_a_type_list_is_kept() -> None:
    """The type list won: `unit` could be any string ("Kelvin" was answered)."""
    unit = {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None]}
    schema = {"type": "object", "properties": {"unit": unit}, "required": ["unit"]}
    grammar = json_grammar([], schema)
    assert "celsius" in grammar
    assert "fahrenheit" in grammar
    assert '"null"' in grammar


def test_branches_beside_an_objects_properties_keep_the_object() -> None:
    """`anyOf` of `required` lists was read alone: each branch was any JSON value, and the
    model answered a number."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
        "anyOf": [{"required": ["city"]}, {"required": ["zip"]}],
    }
    grammar = json_grammar([], schema)
    assert '"\\"city\\""' in grammar
    assert '"\\"zip\\""' in grammar


def test_a_type_list_keeps_the_keywords_beside_it() -> None:
    """The converter built bare types: a nullable string's maxLength was dropped."""
    grammar = json_grammar([], {"type": ["string", "null"], "maxLength": 3})
    assert '"\\"" (char (char (char)?)?)? "\\""' in grammar  # at most 3 characters
    assert '"null"' in grammar


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"Unused": {"$ref": "#/$defs/Gone"}}, "type": "string"},
        {"type": "number", "not": {"$ref": "#/definitions/Gone"}},
    ],
)
def test_a_ref_to_nothing_where_the_grammar_does_not_read_is_left_alone(
    schema: dict[str, object],
) -> None:
    """Found by fuzzing: such a schema passed the check, then failed to convert, a 400
    that named no place in the schema (and a traceback in the log)."""
    assert "root ::=" in json_grammar([], schema)
    assert "root ::=" in json_grammar([("f", {"type": "object", **schema})], None)


@pytest.mark.parametrize("branches", [[True], [{"type": "string"}]])
def test_an_empty_one_of_beside_an_any_of_is_refused_naming_it(branches: list[object]) -> None:
    """Found by fuzzing: the check walked the `anyOf`, the converter read the empty `oneOf`
    and raised KeyError (a 400 that named no place, and a traceback in the log)."""
    with pytest.raises(SchemaProblem, match="must be a non-empty array") as refused:
        check_schema({"properties": {"a": {"oneOf": [], "anyOf": branches}}})
    assert refused.value.where == "properties.a.oneOf"


def test_a_one_of_beside_an_any_of_is_checked_as_the_grammar_builds_it() -> None:
    """Found by fuzzing: the check walked the `oneOf` alone, the grammar each `anyOf` branch
    with the `oneOf` in it, where a bad `pattern` failed the converter with no place named."""
    with pytest.raises(SchemaProblem, match="pattern must be a string") as refused:
        check_schema({"oneOf": [{}], "anyOf": [{"pattern": {}}]})
    assert refused.value.where.startswith("anyOf.0.")
    assert "root ::=" in json_grammar([], {"oneOf": [{}], "anyOf": [{"type": "string"}]})
