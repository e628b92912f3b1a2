"""The texts inside a JSON Schema that can hold personal data: its prose (`description`,
`title`, `$comment`), its example and allowed values (`enum`, `const`, `default`,
`examples`) and extension keywords (`x-...`).

A tool definition ("look up orders of jane@acme.com", an `enum` of customer names) goes to
the tier that answers just as the messages do, so the guard scans these texts too. Keywords
(`type`, `format`, `pattern`, `required`) and property names are structure: they are left as
they are, so a redacted schema still validates the same shape of arguments.
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
    return _map(schema, visit, in_text=False, names=False)


def _map(node: Any, visit: Callable[[str], str], *, in_text: bool, names: bool) -> Any:
    if isinstance(node, str):
        return visit(node) if in_text else node
    if isinstance(node, list):
        return [_map(item, visit, in_text=in_text, names=False) for item in node]
    if not isinstance(node, dict):
        return node
    mapped = {}
    for key, value in node.items():
        keyword = not in_text and not names
        mapped[key] = _map(
            value,
            visit,
            in_text=in_text
            or (keyword and (key in TEXT_KEYWORDS or key.startswith(EXTENSION_PREFIX))),
            names=keyword and key in NAME_MAPS,
        )
    return mapped
