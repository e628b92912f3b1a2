"""Which texts of a JSON Schema the guard reads, and that mapping them keeps the structure."""

from __future__ import annotations

from typing import Any

from smallfirst.privacy.schema_texts import map_schema_texts, schema_names, schema_patterns

SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Contact",
    "description": "Who to write to",
    "properties": {
        "email": {"type": "string", "format": "email", "examples": ["ann@example.com"]},
        "title": {"type": "string", "enum": ["Dr", "Ms"], "default": "Ms"},
        "address": {"$ref": "#/$defs/address"},
    },
    "required": ["email", "title"],
    "$defs": {"address": {"type": "object", "const": {"city": "Oslo", "zip": 150}}},
    "additionalProperties": False,
}


def visited(schema: Any) -> list[str]:
    texts: list[str] = []

    def visit(text: str) -> str:
        texts.append(text)
        return text

    map_schema_texts(schema, visit)
    return texts


def test_prose_and_values_are_visited_in_order() -> None:
    assert visited(SCHEMA) == ["Who to write to", "ann@example.com", "Dr", "Ms", "Ms", "Oslo"]


def test_a_title_of_one_identifier_is_a_name_and_one_in_words_prose() -> None:
    """pydantic titles a model's schema with its class name ("GetWeather")."""
    assert schema_names(SCHEMA)[0] == "Contact"
    assert map_schema_texts(SCHEMA, str.upper)["title"] == "Contact"
    worded = {"title": "Contact details", "properties": {"a": {"title": "Ana_Ruiz"}}}
    assert visited(worded) == ["Contact details"]
    assert schema_names(worded) == ["a", "Ana_Ruiz"]


def test_keywords_and_property_names_are_kept() -> None:
    mapped = map_schema_texts(SCHEMA, lambda text: text.upper())
    assert mapped["properties"]["email"]["format"] == "email"
    assert mapped["properties"]["title"]["type"] == "string"  # a property named like a keyword
    assert mapped["properties"]["title"]["enum"] == ["DR", "MS"]
    assert mapped["required"] == ["email", "title"]
    assert mapped["$defs"]["address"]["const"] == {"city": "OSLO", "zip": 150}
    assert mapped["properties"]["address"] == {"$ref": "#/$defs/address"}
    assert SCHEMA["title"] == "Contact"  # a copy: the request's own schema is untouched


def test_nothing_to_map() -> None:
    assert map_schema_texts(None, str.upper) is None
    assert visited({"type": "string"}) == []


def test_comments_and_extension_keywords_are_texts() -> None:
    schema = {
        "type": "object",
        "$comment": "Customer Ana Ruiz asked for this",
        "x-owner": {"name": "Hamish", "team": ["ops"]},
        "properties": {"x-id": {"type": "string", "x-note": "internal"}},
    }
    assert visited(schema) == ["Customer Ana Ruiz asked for this", "Hamish", "ops", "internal"]
    assert map_schema_texts(schema, str.upper)["properties"]["x-id"]["type"] == "string"


def test_patterns_are_collected_apart_from_names_and_left_as_they_are() -> None:
    schema = {
        "properties": {
            "to": {"type": "string", "pattern": "^ann@x\\.io$"},
            "pattern": {"type": "string", "description": "a property named like the keyword"},
        },
        "patternProperties": {"^bob@x\\.io$": {"type": "string"}},
    }
    assert schema_patterns(schema) == ["^ann@x\\.io$", "^bob@x\\.io$"]
    assert schema_names(schema) == ["to", "pattern"]
    mapped = map_schema_texts(schema, str.upper)
    assert mapped["properties"]["to"]["pattern"] == "^ann@x\\.io$"
    assert mapped["properties"]["pattern"]["description"] == "A PROPERTY NAMED LIKE THE KEYWORD"
