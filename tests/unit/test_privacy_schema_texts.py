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
    assert visited(SCHEMA) == [
        *("Who to write to", "ann@example.com", "Dr", "Ms", "Ms"),
        *("city", "Oslo", "zip"),  # an object given as a value: its keys are text too
    ]


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
    assert mapped["$defs"]["address"]["type"] == "object"
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
    assert visited(schema) == [
        *("Customer Ana Ruiz asked for this", "name", "Hamish", "team", "ops", "internal")
    ]
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


def test_every_value_that_is_no_structure_is_a_text() -> None:
    """OpenAPI's `example`, annotations of other generators, and the keys of an object given
    as a value went upstream as they were: the texts were a list of known keywords."""
    schema = {
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email", "example": "ann@flux.io"},
            "to": {"type": "string", "markdownDescription": "Usually *Ana Ruiz*"},
            "cc": {"type": "string", "errorMessage": "not like bob@flux.io"},
            "owners": {"type": "object", "default": {"eve@flux.io": "admin"}},
        },
        "examples": [{"ann@flux.io": "+44 20 7946 0958"}],
    }
    assert visited(schema) == [
        *("ann@flux.io", "Usually *Ana Ruiz*", "not like bob@flux.io", "eve@flux.io", "admin"),
        *("ann@flux.io", "+44 20 7946 0958"),
    ]
    mapped = map_schema_texts(schema, lambda text: f"<{len(text)}>")
    assert mapped["properties"]["owners"] == {"type": "object", "default": {"<11>": "<5>"}}
    assert mapped["properties"]["email"]["format"] == "email"


def test_sub_schemas_are_walked_and_structure_kept() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": ["object", "null"],
        "anyOf": [{"required": ["to"]}, {"not": {"const": "ann@flux.io"}}],
        "items": {"enum": ["Ana Ruiz"], "contentMediaType": "text/plain"},
        "dependencies": {"to": ["cc"], "cc": {"description": "Copy to Hamish"}},
        "dependentRequired": {"to": ["cc"]},
        "discriminator": {"propertyName": "kind", "mapping": {"a": "#/$defs/a"}},
    }
    assert visited(schema) == ["ann@flux.io", "Ana Ruiz", "Copy to Hamish"]
    assert schema_names(schema) == ["to", "cc"]
    mapped = map_schema_texts(schema, str.upper)
    assert {key: mapped[key] for key in ("$schema", "type", "dependentRequired")} == {
        key: schema[key] for key in ("$schema", "type", "dependentRequired")
    }
    assert mapped["discriminator"] == schema["discriminator"]
    assert mapped["dependencies"]["to"] == ["cc"]
