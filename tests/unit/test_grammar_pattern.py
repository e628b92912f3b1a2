"""JSON Schema patterns rewritten for a grammar over the JSON text of a string."""

import pytest

from smallfirst.backends.grammar_pattern import grammar_pattern
from smallfirst.backends.schema_check import SchemaProblem, check_schema


@pytest.mark.parametrize(
    ("pattern", "rewritten"),
    [
        (r"^\d{5}$", r"^[0-9]{5}$"),
        (r"^[\w.-]+$", r"^[A-Za-z0-9_.-]+$"),
        (r"^\\d$", r"^\\\\d$"),  # a backslash (two in the JSON text), then d
        (r"^[^,]$", r'^[^"\\\x00-\x1F\x7F,]$'),
        (r"^\S+$", r'^[^ "\\\x00-\x1F\x7F]+$'),
        (r"^a\tb$", r"^a\\tb$"),
        (r"^\.\-$", r"^[\x2E][\x2D]$"),  # GBNF knows no "\."
    ],
)
def test_escapes_become_what_the_json_text_holds(pattern: str, rewritten: str) -> None:
    assert grammar_pattern(pattern) == rewritten


@pytest.mark.parametrize("pattern", [r"^\bword$", r"^\p{L}+$", r"^[\n]$", r'^[a"]+$'])
def test_escapes_the_grammar_cannot_express_are_refused_with_a_reason(pattern: str) -> None:
    schema = {"type": "string", "pattern": pattern}
    with pytest.raises(SchemaProblem, match="is not supported by the local grammar"):
        check_schema(schema)


@pytest.mark.parametrize(
    ("pattern", "position"),
    [("^a?+$", 3), ("^a*+$", 3), ("^a|*$", 3), ("^(a)?*$", 5), ("^a{2}*$", 5), ("^a??+$", 4)],
)
def test_a_quantifier_with_nothing_to_repeat_is_refused_naming_it(
    pattern: str, position: int
) -> None:
    """ECMA-262 has no such repeat; the converter copied it and llama.cpp refused the grammar,
    a 400 that could not name the pattern."""
    schema = {"type": "string", "pattern": pattern}
    with pytest.raises(SchemaProblem, match=f"at position {position} has nothing to repeat"):
        check_schema(schema)


@pytest.mark.parametrize("pattern", ["^a+?$", "^.*?$", "^a{2,3}?$", r"^\*+$", "^[*+?]{2}$"])
def test_lazy_quantifiers_and_quantifier_characters_as_text_are_kept(pattern: str) -> None:
    check_schema({"type": "string", "pattern": pattern})
