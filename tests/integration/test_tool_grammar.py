"""The grammar that makes a local model's answer under tool_choice "auto" a call or prose,
checked token by token by llama.cpp's own grammar sampler with the bundled vocabulary."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator

import pytest
from llama_cpp.llama_grammar import JSON_GBNF

from smallfirst.backends.json_grammar import json_grammar
from smallfirst.backends.llamacpp_engine import resolve_model_path
from smallfirst.backends.local_tools import grammar_text
from smallfirst.types import ChatRequest
from tests.helpers import WEATHER_WITH_DEFS

pytestmark = pytest.mark.integration

Accepts = Callable[[str, str], bool]
OSLO_CALL = '{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}'


@pytest.fixture(scope="module")
def accepts() -> Iterator[Accepts]:
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as low

    path = resolve_model_path("bundled:smollm2")
    llama = Llama(model_path=str(path), vocab_only=True, verbose=False)

    def check(grammar: str, text: str) -> bool:
        """Whether `grammar` lets an answer begin with `text`."""
        sampler = low.llama_sampler_init_grammar(llama._model.vocab, grammar.encode(), b"root")
        assert sampler, "llama.cpp cannot parse the grammar"
        try:
            for token in llama.tokenize(text.encode(), add_bos=False, special=False):
                candidate = (low.llama_token_data * 1)(low.llama_token_data(token, 0.0, 0.0))
                array = low.llama_token_data_array(candidate, 1, -1, False)
                low.llama_sampler_apply(sampler, ctypes.byref(array))
                if candidate[0].logit == float("-inf"):
                    return False
                low.llama_sampler_accept(sampler, token)
            return True
        finally:
            low.llama_sampler_free(sampler)

    yield check
    llama.close()


@pytest.mark.parametrize(
    ("answer", "allowed"),
    [
        (OSLO_CALL, True),
        ("It is sunny in Oslo.", True),
        ("```python\nprint(1)\n```", True),
        ('[{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}, {"na', True),
        # a call fenced as a JSON code block, as Qwen2.5-Coder writes them
        (f"```json\n{OSLO_CALL}\n```", True),
        # JSON that is no call is prose (as_tool_call tells): asked for a package.json with
        # tools offered, a model that could not begin with "{" made up a tool call
        ('{"name": "demo", "version": "1.0.0"}', True),
        ('```json\n{"name": "demo"', True),
        # begun as a call to an offered tool, it is one: its arguments fit the schema (at a
        # temperature, a model wrote the schema itself as arguments, which passed as prose)
        ('{"name": "get_weather", "arguments": {"properties"', False),
        ('{"name":"get_weather","arguments":{"properties"', False),
        ('```json\n{"name": "get_weather", "arguments": {"properties"', False),
        ('[{"name": "get_weather", "arguments": {"properties"', False),
        ('[\n  {\n    "name": "get_weather",\n    "arguments": {"properties"', False),
        ('{ "name" : "get_weather" , "arguments" : { "properties"', False),
        (" sunny", False),  # whitespace first would hide which of the two it is
    ],
)
def test_under_auto_an_answer_is_a_call_or_prose(
    accepts: Accepts, answer: str, allowed: bool
) -> None:
    assert accepts(grammar_of(), answer) is allowed


def test_calls_follow_their_schema_when_calls_are_required(accepts: Accepts) -> None:
    required = grammar_of(tool_choice="required")
    assert accepts(required, OSLO_CALL)
    assert not accepts(required, '{"name": "get_weather", "arguments": {"unit": "kelvin"')
    assert not accepts(required, '{"name": "get_time"')  # not a tool offered
    assert not accepts(required, "It is sunny")


def test_several_calls_at_once_only_when_parallel_calls_are_allowed(accepts: Accepts) -> None:
    several = '[{"name": "get_weather", "arguments": {"city": "Oslo"'
    assert accepts(grammar_of(tool_choice="required"), several)
    clock = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
    either = '[{"name": "get_time", "arguments": {}}, {"name": "get_weather", "arguments": {'
    assert accepts(grammar_of(tools=[WEATHER_WITH_DEFS, clock], tool_choice="required"), either)
    assert not accepts(grammar_of(tool_choice="required", parallel_tool_calls=False), several)
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert not accepts(grammar_of(tool_choice=named), several)


def test_calls_may_be_indented_and_answers_stay_compact(accepts: Accepts) -> None:
    """Qwen2.5-Coder indents its call arrays (one space allowed, it could not write them); a
    `response_format` answer stays compact: fewer tokens before a client's max_tokens."""
    assert accepts(grammar_of(tool_choice="required"), '[\n  {\n    "name": "get_weather"')
    answer_only = json_grammar([], {"type": "object", "properties": {"a": {"type": "integer"}}})
    assert accepts(answer_only, '{"a": 1}')
    assert not accepts(answer_only, '{\n  "a"')


def grammar_of(**extra: object) -> str:
    request = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Weather in Oslo?"}],
            "tools": [WEATHER_WITH_DEFS],
            **extra,
        }
    )
    grammar = grammar_text(request)
    assert grammar is not None
    return grammar


POEM = {
    "type": "object",
    "properties": {"poem": {"type": "string"}},
    "required": ["poem"],
    "additionalProperties": False,
}
STRING_GRAMMARS = {  # how each JSON grammar a request may get begins a string
    "json_schema": (lambda: json_grammar([], POEM), '{"poem": "The sea'),
    "json_object": (lambda: str(JSON_GBNF), '{"poem": "The sea'),
    "a required call": (
        lambda: grammar_of(tool_choice="required"),
        '{"name": "get_weather", "arguments": {"city": "Oslo',
    ),
    "a call under auto": (
        lambda: grammar_of(),
        '{"name": "get_weather", "arguments": {"city": "Os',
    ),
    "an object answer beside tools": (
        lambda: grammar_of(response_format={"type": "json_object"}),
        '{"poem": "The sea',
    ),
    "a pattern's dot": (lambda: json_grammar([], {"pattern": "^.*$"}), '"The sea'),
    "an additional property's key": (
        lambda: json_grammar([], {"type": "object", "additionalProperties": {"type": "integer"}}),
        '{"The sea',
    ),
}


@pytest.mark.parametrize("kind", STRING_GRAMMARS)
def test_a_string_holds_escapes_never_raw_control_characters(accepts: Accepts, kind: str) -> None:
    """A raw line break in a string is no JSON ("Invalid control character"): Qwen2.5-Coder
    wrote one in a poem, and the answer ended with finish_reason "stop"."""
    make, begun = STRING_GRAMMARS[kind]
    grammar = make()
    escaped = "\\t" if kind == "a pattern's dot" else "\\n"  # a regex's "." is no line break
    assert accepts(grammar, begun + escaped + "A vast")
    assert not accepts(grammar, begun + "\nA vast")
    assert not accepts(grammar, begun + "\tA vast")


def test_enum_values_and_only_they_fit_their_trie(accepts: Accepts) -> None:
    grammar = json_grammar([], {"enum": ["v1", "v10", "v2", 12, '12" pizza', None]})
    for value in ('"v1"', '"v10"', '"v2"', "12", '"12\\" pizza"', "null"):
        assert accepts(grammar, value), value
    for value in ('"v3"', '"v100"', '"v1"0', "1", "12 ", '"12"', "nul "):
        assert not accepts(grammar, value + "}"), value


def test_an_integers_bounds_and_only_they_fit(accepts: Accepts) -> None:
    """The converter ignored `minimum`/`maximum`: a rating from 1 to 5 could be 42; and a
    type list dropped the keywords beside it."""
    rating = {
        "type": "object",
        "properties": {
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "votes": {"type": ["integer", "null"], "exclusiveMinimum": 0},
            "sure": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["stars", "votes", "sure"],
    }
    grammar = json_grammar([], rating)
    for answer in (
        '{"stars": 5, "votes": 12, "sure": 0.85}',
        '{"stars": 1, "votes": null, "sure": 1.0}',
    ):
        assert accepts(grammar, answer), answer
    for begun in ('{"stars": 0', '{"stars": 42', '{"stars": 6', '{"stars": -', '{"stars": 05'):
        assert not accepts(grammar, begun), begun
    assert not accepts(grammar, '{"stars": 3, "votes": 0}')
    assert not accepts(grammar, '{"stars": 3, "votes": -')
    for sure in ("85", "1.5", "-0.1", "2e-1"):
        assert not accepts(grammar, '{"stars": 3, "votes": 2, "sure": ' + sure + "}"), sure


def test_each_tools_refs_keep_their_own_definitions(accepts: Accepts) -> None:
    """Two tools with a `$defs` entry of the same name: the second's was the first's."""

    def with_units(name: str, units: list[str]) -> dict[str, object]:
        parameters = {
            "type": "object",
            "properties": {"unit": {"$ref": "#/$defs/Unit"}},
            "required": ["unit"],
            "$defs": {"Unit": {"enum": units}},
        }
        return {"type": "function", "function": {"name": name, "parameters": parameters}}

    tools = [with_units("heat", ["celsius"]), with_units("size", ["inch", "cm"])]
    grammar = grammar_of(tools=tools, tool_choice="required")
    assert accepts(grammar, '{"name": "size", "arguments": {"unit": "cm"}}')
    assert not accepts(grammar, '{"name": "size", "arguments": {"unit": "celsius"')
    assert accepts(grammar, '{"name": "heat", "arguments": {"unit": "celsius"}}')


def test_a_recursive_schema_is_a_recursive_grammar(accepts: Accepts) -> None:
    node = {
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        "required": ["kids"],
    }
    grammar = json_grammar([], {"$defs": {"node": node}, "$ref": "#/$defs/node"})
    assert accepts(grammar, '{"kids": [{"kids": []}, {"kids": [{"kids": []}]}]}')
    assert not accepts(grammar, '{"kids": [{"name')


def pattern_grammar(pattern: str) -> str:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}
    return json_grammar([], {**schema, "required": ["a"]})


@pytest.mark.parametrize(
    ("pattern", "answer", "allowed"),
    [
        (r"^\d{5}$", '{"a": "01234"}', True),  # pydantic's zip code: "\d" was the text "\d"
        (r"^\d{5}$", '{"a": "0123x', False),
        (r"^\w+\s\d$", '{"a": "ab_9 7"}', True),
        (r"^[^,]+$", '{"a": "x"}', True),
        (r"^[^,]+$", '{"a": "x"y"}', False),  # a quote ended the string: no JSON after it
        (r"^[^,]+$", '{"a": "x\ny"}', False),  # nor a raw line break
        (r"^\D+$", '{"a": "x"y"}', False),
        (r"^a\nb$", '{"a": "a\\nb"}', True),  # a line break, escaped as JSON writes it
        (r"^a\nb$", '{"a": "a\nb"}', False),
        (r'^say "hi"$', r'{"a": "say \"hi\""}', True),  # a quote of the value is \" in JSON
        (r'^say "hi"$', '{"a": "say "hi""}', False),
        (r"^a\\b$", r'{"a": "a\\b"}', True),  # so is a backslash \\ (not \b, a backspace)
        (r"^a\\b$", r'{"a": "a\b"}', False),
    ],
)
def test_a_patterns_escapes_and_negated_classes_fit_the_json_text(
    accepts: Accepts, pattern: str, answer: str, allowed: bool
) -> None:
    assert accepts(pattern_grammar(pattern), answer) == allowed


def test_a_grammar_llama_cpp_refuses_is_a_400_not_a_crash() -> None:
    """No schema the check lets through is known to make one (the last, a pattern's `\\.`,
    is rewritten now); should one, its request is refused before the sampler chain, where a
    failed grammar stage took the process down."""
    from llama_cpp import Llama

    from smallfirst.backends.llamacpp_sampling import _grammar_sampler
    from smallfirst.errors import InvalidRequest

    llama = Llama(
        model_path=str(resolve_model_path("bundled:smollm2")), vocab_only=True, verbose=False
    )
    request = ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )
    try:
        with pytest.raises(InvalidRequest, match="cannot use"):
            _grammar_sampler(llama, 'root ::= "a\\/b"', request)
    finally:
        llama.close()
