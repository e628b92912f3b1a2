"""The texts inside a JSON Schema that can hold personal data: its prose (`description`,
`title` unless it is one identifier, `$comment`), its example and allowed values (`enum`,
`const`, `default`, `examples`) and extension keywords (`x-...`).

A tool definition ("look up orders of jane@acme.com", an `enum` of customer names) goes to
the tier that answers just as the messages do, so the guard scans these texts too. Keywords
(`type`, `format`, `pattern`, `required`) and property names are structure: they are left as
they are, so a redacted schema still validates the same shape of arguments. Property and
definition names and one-identifier titles, and the regular expressions of `pattern` and
`patternProperties` (which may spell out a value, `^jane@acme\\.com$`), are scanned as
names that cannot be redacted (`schema_names`, `schema_patterns`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TEXT_KEYWORDS = frozenset(
    {"description", "title", "enum", "const", "default", "examples", "$comment"}
)
# A title that is one identifier is the name of a class or a field (pydantic writes the class
# name, "GetWeather", as the title of `openai.pydantic_function_tool`'s schema): a name, as
# the function's, not prose. Read as prose, "GetWeather" was a person found in the title and
# in the function name, so every such tool kept its requests off the cloud.
TITLE_KEYWORD = "title"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Extension keywords ("x-owner", "x-examples") hold whatever their author put there.
EXTENSION_PREFIX = "x-"
# Keywords whose value maps names (of properties, definitions) to sub-schemas.
NAME_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
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
    """`name_map`: the keyword whose value `node` is, when that maps names to sub-schemas
    (`NAME_MAPS`)."""
    if isinstance(node, str):
        return visitors.text(node) if in_text else node
    if isinstance(node, list):
        return [_map(item, visitors, in_text=in_text, name_map=None) for item in node]
    if not isinstance(node, dict):
        return node
    mapped = {}
    for key, value in node.items():
        if name_map is not None:
            visit_key = visitors.pattern if name_map == PATTERN_NAMES else visitors.name
            if visit_key is not None:
                visit_key(key)
        keyword = not in_text and name_map is None
        is_pattern = keyword and key == PATTERN_KEYWORD and isinstance(value, str)
        if is_pattern and visitors.pattern is not None:
            visitors.pattern(value)
        if keyword and key == TITLE_KEYWORD and isinstance(value, str) and _IDENTIFIER.match(value):
            if visitors.name is not None:
                visitors.name(value)
            mapped[key] = value
            continue
        mapped[key] = _map(
            value,
            visitors,
            in_text=in_text
            or (keyword and (key in TEXT_KEYWORDS or key.startswith(EXTENSION_PREFIX))),
            name_map=key if keyword and key in NAME_MAPS else None,
        )
    return mapped
