"""The texts inside a JSON Schema that can hold personal data: every value that is not
structure. Prose (`description`, `title` unless it is one identifier, `$comment`), example and
allowed values (`enum`, `const`, `default`, `examples`, OpenAPI's `example`), extension keywords
(`x-...`) and any other annotation a generator adds (`markdownDescription`, `errorMessage`),
with the keys of the objects such values hold (`"default": {"jane@acme.com": "owner"}`).

A tool definition ("look up orders of jane@acme.com", an `enum` of customer names) goes to
the tier that answers just as the messages do, so the guard scans these texts too. Structure
is left as it is, so a redacted schema still validates the same shape of arguments: the
keywords that name types, formats, references and required properties (`STRUCTURE_KEYWORDS`),
property names, and the sub-schemas, walked as schemas. Property and definition names and
one-identifier titles, and the regular expressions of `pattern` and `patternProperties`
(which may spell out a value, `^jane@acme\\.com$`), are scanned as names that cannot be
redacted (`schema_names`, `schema_patterns`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A title that is one identifier is the name of a class or a field (pydantic writes the class
# name, "GetWeather", as the title of `openai.pydantic_function_tool`'s schema): a name, as
# the function's, not prose. Read as prose, "GetWeather" was a person found in the title and
# in the function name, so every such tool kept its requests off the cloud.
TITLE_KEYWORD = "title"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Keywords whose value is structure: what validates, and names of properties and schemas
# (OpenAPI's `discriminator` names a property and maps its values to schema references).
STRUCTURE_KEYWORDS = frozenset(
    {
        "type",
        "format",
        "required",
        "dependentRequired",
        "$ref",
        "$dynamicRef",
        "$schema",
        "$id",
        "$anchor",
        "$dynamicAnchor",
        "$vocabulary",
        "contentEncoding",
        "contentMediaType",
        "discriminator",
    }
)
# Keywords whose value is a schema or a list of schemas.
SUBSCHEMA_KEYWORDS = frozenset(
    {
        "items",
        "prefixItems",
        "additionalItems",
        "contains",
        "additionalProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "propertyNames",
        "contentSchema",
        "not",
        "if",
        "then",
        "else",
        "anyOf",
        "oneOf",
        "allOf",
    }
)
# Keywords whose value maps names (of properties, definitions) to sub-schemas (draft 7's
# `dependencies` maps them to a schema or to a list of property names).
NAME_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
)
# Keywords whose value, or whose names, are regular expressions.
PATTERN_KEYWORD = "pattern"
PATTERN_NAMES = "patternProperties"


def map_schema_texts(schema: Any, visit: Callable[[str], str]) -> Any:
    """A copy of `schema` with each text replaced by `visit(text)`, visited depth first in
    the schema's own key order (the same order on every call)."""
    return _map(schema, _Visitors(visit), in_text=False, name_map=None)


def schema_names(schema: Any) -> list[str]:
    """The names `schema` gives its properties and definitions. They go upstream as they
    are (the model writes property names back), yet they may still name a person; the
    guard reads them as function names (`identifiers.py`)."""
    names: list[str] = []
    _map(schema, _Visitors(str, name=names.append), in_text=False, name_map=None)
    return names


def schema_patterns(schema: Any) -> list[str]:
    """The regular expressions of `schema` (`pattern` values, `patternProperties` names).
    A placeholder in one would change what the schema accepts, so they go upstream as
    they are, like names."""
    patterns: list[str] = []
    _map(schema, _Visitors(str, pattern=patterns.append), in_text=False, name_map=None)
    return patterns


@dataclass(frozen=True, slots=True)
class _Visitors:
    """What `_map` calls on each text (whose result replaces it), name and pattern."""

    text: Callable[[str], str]
    name: Callable[[str], None] | None = None
    pattern: Callable[[str], None] | None = None


def _map(node: Any, visitors: _Visitors, *, in_text: bool, name_map: str | None) -> Any:
    """`in_text`: `node` is a value, not structure. `name_map`: the keyword whose value
    `node` is, when that maps names to sub-schemas (`NAME_MAPS`)."""
    if isinstance(node, str):
        return visitors.text(node) if in_text else node
    if isinstance(node, list):
        return [_map(item, visitors, in_text=in_text, name_map=None) for item in node]
    if not isinstance(node, dict):
        return node
    if in_text:  # an object given as a value: its keys are free text too
        return {
            visitors.text(key): _map(value, visitors, in_text=True, name_map=None)
            for key, value in node.items()
        }
    if name_map is not None:
        visit_key = visitors.pattern if name_map == PATTERN_NAMES else visitors.name
        for key in node:
            if visit_key is not None:
                visit_key(key)
        return {
            key: _map(value, visitors, in_text=False, name_map=None) for key, value in node.items()
        }
    return {key: _map_keyword(key, value, visitors) for key, value in node.items()}


def _map_keyword(keyword: str, value: Any, visitors: _Visitors) -> Any:
    """The value of one keyword of a schema: structure as it is, sub-schemas walked, and
    every other keyword's value (prose, examples, annotations) as text."""
    if keyword == PATTERN_KEYWORD and isinstance(value, str):
        if visitors.pattern is not None:
            visitors.pattern(value)
        return value
    if keyword == TITLE_KEYWORD and isinstance(value, str) and _IDENTIFIER.match(value):
        if visitors.name is not None:
            visitors.name(value)
        return value
    if keyword in STRUCTURE_KEYWORDS:
        return value
    name_map = keyword if keyword in NAME_MAPS else None
    in_text = name_map is None and keyword not in SUBSCHEMA_KEYWORDS
    return _map(value, visitors, in_text=in_text, name_map=name_map)
