"""GBNF for prose that does not begin as a call: a rule `prose` that matches any text except
text beginning with whitespace or with one of some forbidden beginnings.

Under tool_choice "auto" a local model answers with a call or with prose (local_tools.py).
Prose may begin with "{" (a package.json, a JSON example), but not as `{"name": "get_weather"`
does: from there the answer is a call, so the call's grammar holds and its arguments fit the
tool's schema. Otherwise a model sampling at a temperature wrote calls whose "arguments" were
the tool's schema itself; they passed as prose, then as calls.

A forbidden beginning is a sequence of JSON tokens with any whitespace between them (models
pretty-print). The rule is built from a trie of them: at each step a character that leaves
the trie is free from there on, one that follows it goes on, whitespace between tokens stays
where it is, and a character that completes a forbidden beginning is not allowed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

_WHITESPACE = " \t\n"
_ANY = "prose-any"


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    forbidden: bool = False  # a forbidden beginning is complete here
    gap: bool = False  # between two tokens: whitespace may come here


def prose_grammar(forbidden: Iterable[Sequence[str]]) -> str:
    """GBNF rules for `prose` (and its helpers), to be joined with a grammar that uses it."""
    root = _Node()
    for tokens in forbidden:
        node = root
        for index, token in enumerate(tokens):
            node.gap = node.gap or index > 0
            for char in token:
                node = node.children.setdefault(char, _Node())
        node.forbidden = True
    rules = [f"{_ANY} ::= [^\\x00]*"]
    names = (f"prose-{number}" for number in itertools.count(1))
    _add_rules(root, "prose", rules, names, first=True)
    return "\n".join(rules) + "\n"


def _add_rules(node: _Node, name: str, rules: list[str], names: Iterator[str], first: bool) -> None:
    spaced = node.gap or first  # whitespace is no free character here
    excluded = "".join(node.children) + (_WHITESPACE if spaced else "")
    alternatives = [f"[^{_escaped(excluded)}] {_ANY}"]
    if node.gap:
        alternatives.append(f"[{_escaped(_WHITESPACE)}] {name}?")
    for char, child in sorted(node.children.items()):
        if child.forbidden:
            continue
        child_name = next(names)
        alternatives.append(f'"{_escaped(char)}" {child_name}?')
        _add_rules(child, child_name, rules, names, first=False)
    rules.append(f"{name} ::= " + " | ".join(alternatives))


def _escaped(chars: str) -> str:
    """Characters as GBNF writes them in a literal or a class: hex escapes, so that none of
    them means anything there (quotes, brackets, backslashes, carets, dashes)."""
    return "".join(char if char.isalnum() else f"\\x{ord(char):02X}" for char in chars)
