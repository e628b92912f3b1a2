"""YAML front matter at the top of a Markdown file (Jekyll, Hugo, Obsidian, Docusaurus):
metadata, not text to search. Its `title` names the document."""

from __future__ import annotations

import re

import yaml

# `---` on the first line, then the block up to a line of `---` or `...` (within 200 lines:
# a file that merely starts with a thematic break has no closing line that near, or is text)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n((?:.*\n){0,200}?)(?:---|\.\.\.)[ \t]*(?:\n|\Z)")


def front_matter(text: str) -> tuple[int, str]:
    """(where the text after the front matter starts, its title); (0, "") without one. A
    block that is not a YAML mapping is not front matter: it stays text."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return 0, ""
    try:
        meta = yaml.safe_load(match.group(1))
    # a number of 4,300+ digits or a date like 2024-13-45 is a ValueError, brackets nested
    # 500 deep a RecursionError: each stopped the whole ingest (a 1 kB file will do)
    except (yaml.YAMLError, ValueError, RecursionError):
        return 0, ""
    if not isinstance(meta, dict):
        return 0, ""
    title = meta.get("title")
    return match.end(), str(title).strip() if isinstance(title, str | int | float) else ""
