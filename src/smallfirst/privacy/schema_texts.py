"""The texts inside a JSON Schema that can hold personal data: its prose (`description`,
`title`, `$comment`), its example and allowed values (`enum`, `const`, `default`,
`examples`) and extension keywords (`x-...`).

A tool definition ("look up orders of jane@acme.com", an `enum` of customer names) goes to
the tier that answers just as the messages do, so the guard scans these texts too. Keywords
(`type`, `format`, `pattern`, `required`) and property names are structure: they are left as
they are, so a redacted schema still validates the same shape of arguments. Property and
definition names are scanned as names that cannot be redacted (`schema_names`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TEXT_KEYWORDS = frozenset(
    {"description", "title", "enum", "const", "default", "examples", "$comment"}
)
# Extension keywords ("x-owner", "x-examples") hold whatever their author put there.
EXTENSION_PREFIX = "x-"
# Keywords whose value maps names (of properties, definitions) to sub-schemas.
NAME_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)


def map_schema_texts(schema: Any, visit: Callable[[str], str]) -> Any:
    """A copy of `schema` with each text replaced by `visit(text)`, visited depth first in
    the schema's own key order (the same order on every call)."""
    return _map(schema, visit, None, in_text=False, names=False)


def schema_names(schema: Any) -> list[str]:
    """The names `schema` gives its properties and definitions. They go upstream as they
    are (the model writes property names back), yet they may still name a person; the
    guard reads them as function names (`identifiers.py`)."""
    names: list[str] = []
    _map(schema, str, names.append, in_text=False, names=False)
    return names


def _map(
    node: Any,
    visit: Callable[[str], str],
    visit_name: Callable[[str], None] | None,
    *,
    in_text: bool,
    names: bool,
) -> Any:
    if isinstance(node, str):
        return visit(node) if in_text else node
    if isinstance(node, list):
        return [_map(item, visit, visit_name, in_text=in_text, names=False) for item in node]
    if not isinstance(node, dict):
        return node
    mapped = {}
    for key, value in node.items():
        if names and visit_name is not None:
            visit_name(key)
        keyword = not in_text and not names
        mapped[key] = _map(
            value,
            visit,
            visit_name,
            in_text=in_text
            or (keyword and (key in TEXT_KEYWORDS or key.startswith(EXTENSION_PREFIX))),
            names=keyword and key in NAME_MAPS,
        )
    return mapped
