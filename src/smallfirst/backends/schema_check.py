"""JSON Schemas checked before a local grammar is built from them (`json_grammar.py`), so that
a schema the grammar cannot express is a 400 that names the place in the schema and the
reason, never the converter's Python exception ("'bool' object has no attribute 'get'").

The walk follows llama-cpp-python's `SchemaConverter.visit` (which keyword wins where several
are given). The limits keep building a grammar well under a second and llama.cpp's matching
of it at each token near a tenth of one (measured with the bundled vocabulary: a token's worst
case, `llama_sampler_apply` over the whole vocabulary):

- enum values: 1,000 in all, and an enum of more than 250 values at most 15,000 characters
  (OpenAI's Structured Outputs limits). Written as a trie (`json_grammar.py`), 20,000 values
  cost 0.014 s a token; as one alternative each, 5.6 s (24 s for five tokens).
- anyOf / oneOf branches and type lists: 500 in all (0.07 s a token for 300 consts, 0.2 s
  for 1,000: llama.cpp tries every open branch at each token).
- properties: 5,000 in all (OpenAI's; 0.015 s a token, required or not), of which at most 100
  optional in one object: the converter lists what may follow each, 0.1 s a token at a key
  for 100, 0.3 s for 200; at 1,000 it raised RecursionError.
- minLength / maxLength / minItems / maxItems: 1,000 (llama.cpp refuses a larger maximum).
- minimum / maximum: numbers below 1e40 (`number_range.py`).
- 64 schemas nested in each other (the converter recurses at each); names, enum and const
  values: 120,000 characters (OpenAI's).
"""

from __future__ import annotations

import json
import re
from typing import Any

from smallfirst.backends.grammar_pattern import grammar_pattern
from smallfirst.backends.number_range import BadBound, fitting_types, integer_bounds, whole_bounds
from smallfirst.errors import json_kind

MAX_DEPTH = 64  # schemas within schemas; the converter recurses at each
MAX_ENUM_VALUES = 1000  # in all the schema's enums (OpenAI's)
LARGE_ENUM = 250  # an enum with more values than this ...
MAX_LARGE_ENUM_CHARS = 15_000  # ... has at most this many characters of strings (OpenAI's)
MAX_PROPERTIES = 5000  # in all the schema's objects (OpenAI's)
MAX_OPTIONAL_PROPERTIES = 100  # in one object
MAX_ALTERNATIVES = 500  # anyOf / oneOf branches and type lists, in all
MAX_TEXT_CHARS = 120_000  # property and definition names, enum and const values (OpenAI's)
MAX_REPEATS = 1000  # minLength, maxLength, minItems, maxItems: llama.cpp's own bound
MAX_PATTERN_REPEATS = 10 * MAX_REPEATS  # a pattern's `{m,n}` quantifiers, summed
# A `{` after an even number of backslashes: none, or escaped ones (`\\{9}`: nine of them)
_QUANTIFIER = re.compile(r"(?<!\\)(?:\\\\)*\{(\d+)(?:,(\d*))?\}")

TYPES = ("string", "number", "integer", "boolean", "null", "object", "array")
# Keywords the converter builds a rule from; a schema with none of them is any JSON value.
STRUCTURAL = frozenset(
    {"$ref", "type", "oneOf", "anyOf", "allOf", "const", "enum", "properties"}
    | {"additionalProperties", "items", "prefixItems", "pattern"}
)
FORMATS = ("uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5", "date", "time", "date-time")

Path = tuple[str | int, ...]


class SchemaProblem(ValueError):
    """What in a schema the local grammar cannot express: `path` within the schema (keys and
    list indexes) and a reason a client can act on."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason

    @property
    def where(self) -> str:
        """The path as a client names it: `properties.a.type` (empty at the root)."""
        return ".".join(str(part) for part in self.path)


def check_schema(schema: Any) -> None:
    """Raise SchemaProblem for the first thing in `schema` the local grammar cannot express
    or that is over a limit."""
    _Walk(schema).schema(schema, (), 0, frozenset())


def is_untyped(schema: dict[str, Any]) -> bool:
    """A non-empty schema with no keyword the converter builds from ({"title": "X"}, what
    pydantic writes for `Any`): any JSON value. (`{}` is an object, as the converter has it.)"""
    return bool(schema) and not (STRUCTURAL & schema.keys()) and schema.get("format") not in FORMATS


def pointed(root: Any, ref: str) -> Any:
    """What a local `$ref` ("#", "#/$defs/Unit") names within `root`. Raises LookupError."""
    if ref != "#" and not ref.startswith("#/"):
        raise LookupError(ref)
    target = root
    for key in _pointer_path(ref):
        if isinstance(target, dict) and key in target:
            target = target[key]
        elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        else:
            raise LookupError(ref)
    return target


def _pointer_path(ref: str) -> tuple[str, ...]:
    """The keys a local `$ref` steps through, unescaped as JSON Pointer has them."""
    if ref == "#":
        return ()
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/"))


class _Walk:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.entered: set[str] = set()  # refs whose target is walked (once each)
        self.enum_values = 0
        self.properties = 0
        self.alternatives = 0
        self.text_chars = 0

    def schema(self, node: Any, path: Path, depth: int, unguarded: frozenset[str]) -> None:
        """`unguarded`: the refs entered since the last object or array (a ref met again
        among them is left recursion, which llama.cpp's grammars cannot have)."""
        if depth > MAX_DEPTH:
            raise SchemaProblem(path, f"schemas are nested more than {MAX_DEPTH} deep")
        if node is True:  # any value
            return
        if node is False:
            raise SchemaProblem(path, "the schema false allows no value")
        if not isinstance(node, dict):
            raise SchemaProblem(path, f"a schema must be a JSON object, not {json_kind(node)}")
        kind = node.get("type")
        if isinstance(kind, list):
            self.type_list(kind, (*path, "type"))
        elif "type" in node and kind not in TYPES:
            raise SchemaProblem((*path, "type"), _not_a_type(kind))
        for key in ("anyOf", "oneOf"):  # JSON Schema's; one beside the other was a KeyError
            if node.get(key) == []:
                raise SchemaProblem((*path, key), "must be a non-empty array of schemas")
        if "$ref" in node:  # the converter ignores a $ref's siblings, as older drafts do
            self.ref(node["$ref"], (*path, "$ref"), depth, unguarded)
        elif "anyOf" in node or "oneOf" in node:
            built = with_context(node)  # as the grammar is built: one may sit in the other's
            key = "oneOf" if built.get("oneOf") or "anyOf" not in built else "anyOf"
            branches = built[key]
            for index, branch in enumerate(self.branches(branches, (*path, key))):
                self.schema(branch, (*path, key, index), depth + 1, unguarded)
        elif isinstance(kind, list) and not {"const", "enum"} & node.keys():
            for each in fitting_types(kind, node):  # a branch per type, with the other keywords
                self.schema({**node, "type": each}, path, depth + 1, unguarded)
        elif "const" in node:
            self.text((*path, "const"), len(json.dumps(node["const"])))
        elif "enum" in node:
            self.enum(node["enum"], (*path, "enum"))
        elif kind in (None, "object") and (
            "properties" in node or node.get("additionalProperties", True) is not True
        ):
            self.object(node, path, depth)
        elif kind in (None, "object") and "allOf" in node:
            self.all_of(node["allOf"], (*path, "allOf"), depth)
        elif kind in (None, "array") and ("items" in node or "prefixItems" in node):
            self.array(node, path, depth)
        elif kind in (None, "string") and "pattern" in node:
            self.pattern(node["pattern"], (*path, "pattern"))
        elif kind == "string":
            self.bounds(node, path, "minLength", "maxLength", "string")
        elif kind in ("integer", "number"):
            try:
                integer_bounds(node) if kind == "integer" else whole_bounds(node)
            except BadBound as problem:
                raise SchemaProblem((*path, problem.key), problem.reason) from None

    def ref(self, ref: Any, path: Path, depth: int, unguarded: frozenset[str]) -> None:
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise SchemaProblem(
                path,
                f"$ref {json.dumps(ref)} is not supported: only references within the schema"
                ' ("#/$defs/Name") are',
            )
        if ref in unguarded:
            raise SchemaProblem(
                path,
                f"$ref {json.dumps(ref)} leads back to itself with no object or array in"
                " between, which a grammar cannot express (left recursion)",
            )
        if ref in self.entered:  # recursion through an object or array: fine
            return
        try:
            target = pointed(self.root, ref)
        except LookupError:
            raise SchemaProblem(
                path, f"$ref {json.dumps(ref)} points at nothing in this schema"
            ) from None
        self.entered.add(ref)
        self.schema(target, _pointer_path(ref), depth + 1, unguarded | {ref})

    def branches(self, value: Any, path: Path) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise SchemaProblem(path, "must be a non-empty array of schemas")
        self.alternatives += len(value)
        if self.alternatives > MAX_ALTERNATIVES:
            raise SchemaProblem(
                path, f"the schema has more than {MAX_ALTERNATIVES} anyOf/oneOf branches in all"
            )
        return value

    def type_list(self, kinds: list[Any], path: Path) -> None:
        self.branches(kinds, path)
        for index, kind in enumerate(kinds):
            if kind not in TYPES:
                raise SchemaProblem((*path, index), _not_a_type(kind))

    def text(self, path: Path, chars: int) -> None:
        self.text_chars += chars
        if self.text_chars > MAX_TEXT_CHARS:
            raise SchemaProblem(
                path,
                f"the schema's names, enum and const values have more than {MAX_TEXT_CHARS:,}"
                " characters in all",
            )

    def enum(self, values: Any, path: Path) -> None:
        if not isinstance(values, list) or not values:
            raise SchemaProblem(
                path, "enum must be a non-empty array (an empty one allows nothing)"
            )
        self.enum_values += len(values)
        if self.enum_values > MAX_ENUM_VALUES:
            raise SchemaProblem(
                path, f"the schema has more than {MAX_ENUM_VALUES:,} enum values in all"
            )
        strings = sum(len(value) for value in values if isinstance(value, str))
        if len(values) > LARGE_ENUM and strings > MAX_LARGE_ENUM_CHARS:
            raise SchemaProblem(
                path,
                f"an enum of more than {LARGE_ENUM} values may have at most"
                f" {MAX_LARGE_ENUM_CHARS:,} characters of strings; this one has {strings:,}",
            )
        self.text(path, sum(len(json.dumps(value)) for value in values))

    def object(self, node: dict[str, Any], path: Path, depth: int) -> None:
        properties = node.get("properties", {})
        if not isinstance(properties, dict):
            raise SchemaProblem(
                (*path, "properties"), "properties must be an object of names and schemas"
            )
        required = node.get("required", [])
        if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
            raise SchemaProblem((*path, "required"), "required must be an array of names")
        self.properties += len(properties)
        if self.properties > MAX_PROPERTIES:
            raise SchemaProblem(
                (*path, "properties"),
                f"the schema has more than {MAX_PROPERTIES:,} properties in all",
            )
        extra = node.get("additionalProperties")
        if extra is not None and not isinstance(extra, bool | dict):
            raise SchemaProblem(
                (*path, "additionalProperties"),
                "additionalProperties must be true, false or a schema",
            )
        optional = len(set(properties) - set(required)) + (extra is True or isinstance(extra, dict))
        if optional > MAX_OPTIONAL_PROPERTIES:
            raise SchemaProblem(
                (*path, "properties"),
                f"an object may have at most {MAX_OPTIONAL_PROPERTIES} optional properties"
                f" here (this one has {optional}): list more of them in required",
            )
        for name, schema in properties.items():
            self.text((*path, "properties", name), len(name))
            self.schema(schema, (*path, "properties", name), depth + 1, frozenset())
        if isinstance(extra, dict):
            self.schema(extra, (*path, "additionalProperties"), depth + 1, frozenset())

    def all_of(self, parts: Any, path: Path, depth: int) -> None:
        """The converter merges the parts' properties (and those of anyOf within a part)."""
        for index, part in enumerate(self.branches(parts, path)):
            within = (*path, index)
            pieces = part.get("anyOf") if isinstance(part, dict) and "anyOf" in part else [part]
            if not isinstance(pieces, list):
                raise SchemaProblem((*within, "anyOf"), "must be a non-empty array of schemas")
            for piece in pieces:
                if isinstance(piece, dict) and "$ref" in piece:
                    self.ref(piece["$ref"], (*within, "$ref"), depth, frozenset())
                    piece = pointed(self.root, piece["$ref"])
                if not isinstance(piece, dict):
                    raise SchemaProblem(
                        within, f"a schema must be an object, not {json_kind(piece)}"
                    )
                if "properties" in piece:
                    self.object({"properties": piece["properties"]}, within, depth)

    def array(self, node: dict[str, Any], path: Path, depth: int) -> None:
        # the converter's choice: `items` unless it is empty and `prefixItems` is given
        given = "items" in node and (node["items"] or "prefixItems" not in node)
        key = "items" if given else "prefixItems"
        items = node[key]
        if isinstance(items, list):
            if not items:
                raise SchemaProblem((*path, key), "must be a non-empty array of schemas")
            for index, item in enumerate(items):
                self.schema(item, (*path, key, index), depth + 1, frozenset())
            return
        if items != {}:  # {}: any item
            self.schema(items, (*path, key), depth + 1, frozenset())
        self.bounds(node, path, "minItems", "maxItems", "array")

    def bounds(self, node: dict[str, Any], path: Path, low: str, high: str, what: str) -> None:
        for key in (low, high):
            value = node.get(key)
            if key not in node or (key == high and value is None):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SchemaProblem((*path, key), f"{key} must be a whole number, 0 or more")
            if value > MAX_REPEATS:
                raise SchemaProblem(
                    (*path, key),
                    f"{key} above {MAX_REPEATS} is not supported by the local grammar",
                )
        if node.get(high) is not None and node.get(low, 0) > node[high]:
            raise SchemaProblem((*path, low), f"{low} is more than {high}: no {what} fits")

    def pattern(self, pattern: Any, path: Path) -> None:
        from llama_cpp.llama_grammar import SchemaConverter

        if not isinstance(pattern, str):
            raise SchemaProblem(path, "pattern must be a string")
        if not (pattern.startswith("^") and pattern.endswith("$")):
            raise SchemaProblem(
                path, 'the local grammar needs a pattern that begins with "^" and ends with "$"'
            )
        try:
            rewritten = grammar_pattern(pattern)
        except ValueError as problem:
            raise SchemaProblem(path, f"pattern {json.dumps(pattern)}: {problem}") from None
        # The converter writes `{m,n}` out n times: `[a]{200000000}` took 9.7 GB to build.
        counts = [int(n or m) for m, n in _QUANTIFIER.findall(rewritten)]
        if any(count > MAX_REPEATS for count in counts) or sum(counts) > MAX_PATTERN_REPEATS:
            raise SchemaProblem(
                path,
                f"pattern {json.dumps(pattern)} repeats more than the local grammar supports"
                f" ({MAX_REPEATS} a quantifier, {MAX_PATTERN_REPEATS} in all)",
            )
        untyped: Any = SchemaConverter  # llama-cpp-python's converter has no type hints
        converter = untyped(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        try:
            converter._visit_pattern(rewritten, "pattern")
        except Exception:  # the converter's own complaint names Python internals
            raise SchemaProblem(
                path,
                f"pattern {json.dumps(pattern)} uses syntax the local grammar does not support"
                " (it knows . [] () | ? * + {m,n})",
            ) from None


def _not_a_type(kind: Any) -> str:
    return f"{json.dumps(kind)} is not a JSON Schema type (one of {', '.join(TYPES)})"


# Keywords that say nothing of a value's shape.
_ANNOTATIONS = {"title", "description", "$comment", "default", "examples", "$schema", "$id"}


def with_context(schema: Any) -> Any:
    """`anyOf`/`oneOf` beside other keywords (an object's `properties` with
    `anyOf: [{"required": ["city"]}, {"required": ["zip"]}]`) as branches that each hold
    them: the converter read the branches alone, so the object was lost (any JSON went)."""
    if not isinstance(schema, dict):
        return schema
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        context = {k: v for k, v in schema.items() if k != key and k not in _ANNOTATIONS}
        if not context or not isinstance(branches, list):
            continue
        if all(isinstance(b, dict) and "$ref" not in b for b in branches):
            return {key: [_merged(context, branch) for branch in branches]}
    return schema


def _merged(context: dict[str, Any], branch: dict[str, Any]) -> dict[str, Any]:
    merged = {**context, **branch}
    if isinstance(context.get("properties"), dict) and isinstance(branch.get("properties"), dict):
        merged["properties"] = {**context["properties"], **branch["properties"]}
    if isinstance(context.get("required"), list) and isinstance(branch.get("required"), list):
        merged["required"] = list(dict.fromkeys([*context["required"], *branch["required"]]))
    return merged
